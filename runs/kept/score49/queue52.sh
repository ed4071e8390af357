#!/bin/bash
cd /work/main
R=runs/score49/rows
python runs/score49/rows52.py $R/r52_o602.jsonl $(cat runs/score49/o602_half_00) > $R/v.log 2>&1 &
python runs/score49/rows52.py $R/r52_o602.jsonl.b $(cat runs/score49/o602_half_01) > $R/w.log 2>&1
wait
python runs/score49/rows52.py $R/r52_inner_tr.jsonl --transcribed runs/score18/transcribed --seconds 60 $(cat runs/metre/inner60.txt) > $R/x.log 2>&1 &
( python runs/score49/rows52.py $R/r52_heldout.jsonl $(cat runs/score18/heldout41.txt) > $R/y.log 2>&1
  python runs/score49/rows52.py $R/r52_heldout_tr.jsonl --transcribed runs/score18/heldout_transcribed --seconds 60 $(cat runs/score18/heldout41.txt) > $R/z.log 2>&1 ) &
wait
echo done > $R/DONE52
