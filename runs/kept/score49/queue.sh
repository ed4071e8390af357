#!/bin/bash
# rounds 49 and 48 (runs/score49/RULE.md): Mutopia rows with staves.onnx; then beats_open4 as the staff model:
# ASAP rows (602 outer, inner 60 transcribed, held-out 41 whole and transcribed) and Mutopia rows
cd /work/main
R=runs/score49/rows; W="python runs/score38/with_model.py runs/score46/beats_open4.onnx"
python runs/score49/mutopia_rows.py $R/mut_staves.jsonl $(cat runs/score49/mut_half_00) > $R/a.log 2>&1 &
python runs/score49/mutopia_rows.py $R/mut_staves.jsonl.b $(cat runs/score49/mut_half_01) > $R/b.log 2>&1
wait
$W runs/score38/metre_rows.py $R/o602_open4.jsonl $(cat runs/score49/o602_half_00) > $R/c.log 2>&1 &
$W runs/score38/metre_rows.py $R/o602_open4.jsonl.b $(cat runs/score49/o602_half_01) > $R/d.log 2>&1
wait
$W runs/score49/mutopia_rows.py $R/mut_open4.jsonl $(cat runs/score49/mut_half_00) > $R/e.log 2>&1 &
( $W runs/score49/mutopia_rows.py $R/mut_open4.jsonl.b $(cat runs/score49/mut_half_01) > $R/f.log 2>&1
  $W runs/score38/metre_rows.py $R/inner_tr_open4.jsonl --transcribed runs/score18/transcribed --seconds 60 $(cat runs/metre/inner60.txt) > $R/g.log 2>&1 ) &
wait
$W runs/score38/metre_rows.py $R/heldout_open4.jsonl $(cat runs/score18/heldout41.txt) > $R/h.log 2>&1 &
$W runs/score38/metre_rows.py $R/heldout_tr_open4.jsonl --transcribed runs/score18/heldout_transcribed $(cat runs/score18/heldout41.txt) > $R/i.log 2>&1
wait
echo done > $R/DONE
