#!/bin/bash
# round 51's rows: the 777 outer (two halves), inner 60 transcriptions (first 60 s), held-out 41 whole and transcribed
cd /work/main
R=runs/score49/rows
python runs/score49/rows51.py $R/r51_outer.jsonl $(cat runs/score49/o777_half_00) > $R/p.log 2>&1 &
python runs/score49/rows51.py $R/r51_outer.jsonl.b $(cat runs/score49/o777_half_01) > $R/q.log 2>&1
wait
python runs/score49/rows51.py $R/r51_inner_tr.jsonl --transcribed runs/score18/transcribed --seconds 60 $(cat runs/metre/inner60.txt) > $R/s.log 2>&1 &
( python runs/score49/rows51.py $R/r51_heldout.jsonl $(cat runs/score18/heldout41.txt) > $R/t.log 2>&1
  python runs/score49/rows51.py $R/r51_heldout_tr.jsonl --transcribed runs/score18/heldout_transcribed --seconds 60 $(cat runs/score18/heldout41.txt) > $R/u.log 2>&1 ) &
wait
echo done > $R/DONE51
