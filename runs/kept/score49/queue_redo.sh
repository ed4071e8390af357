#!/bin/bash
cd /work/main
R=runs/score49/rows/redo; A="python runs/score49/accents.py"
$A runs/score49/mutopia_rows.py $R/mut_staves.jsonl $(cat runs/score49/mut_half_00) > $R/a.log 2>&1 &
$A runs/score49/mutopia_rows.py $R/mut_staves.jsonl.b $(cat runs/score49/mut_half_01) > $R/b.log 2>&1
wait
$A --staves runs/score46/beats_open4.onnx runs/score38/metre_rows.py $R/o602_open4.jsonl $(cat runs/score49/o602_half_00) > $R/c.log 2>&1 &
$A --staves runs/score46/beats_open4.onnx runs/score38/metre_rows.py $R/o602_open4.jsonl.b $(cat runs/score49/o602_half_01) > $R/d.log 2>&1
wait
echo done > $R/DONE
