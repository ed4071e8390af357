#!/bin/bash
# round 50: beats_open4's beats under the tracker's metre path (staff model staves.onnx): rows on the 602, inner 60
# transcriptions, held-out 41 whole and transcribed
cd /work/main
R=runs/score49/rows; M="--beats-model runs/score46/beats_open4.onnx"
python runs/score38/metre_rows.py $R/o602_b50.jsonl $M $(cat runs/score49/o602_half_00) > $R/j.log 2>&1 &
python runs/score38/metre_rows.py $R/o602_b50.jsonl.b $M $(cat runs/score49/o602_half_01) > $R/k.log 2>&1
wait
python runs/score38/metre_rows.py $R/inner_tr_b50.jsonl $M --transcribed runs/score18/transcribed --seconds 60 $(cat runs/metre/inner60.txt) > $R/l.log 2>&1 &
( python runs/score38/metre_rows.py $R/heldout_b50.jsonl $M $(cat runs/score18/heldout41.txt) > $R/m.log 2>&1
  python runs/score38/metre_rows.py $R/heldout_tr_b50.jsonl $M --transcribed runs/score18/heldout_transcribed $(cat runs/score18/heldout41.txt) > $R/n.log 2>&1 ) &
wait
echo done > $R/DONE50
