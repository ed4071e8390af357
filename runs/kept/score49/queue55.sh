#!/bin/bash
cd /work/main
R=runs/score49/rows; S="python runs/score49/steady55.py"
$S $R/cv_o602.jsonl $(cat runs/score49/o602_half_00) > $R/cv1.log 2>&1 &
$S $R/cv_o602.jsonl.b $(cat runs/score49/o602_half_01) > $R/cv2.log 2>&1
wait
$S $R/cv_inner_tr.jsonl --transcribed runs/score18/transcribed --seconds 60 $(cat runs/metre/inner60.txt) > $R/cv3.log 2>&1 &
( $S $R/cv_heldout.jsonl $(cat runs/score18/heldout41.txt) > $R/cv4.log 2>&1
  $S $R/cv_heldout_tr.jsonl --transcribed runs/score18/heldout_transcribed --seconds 60 $(cat runs/score18/heldout41.txt) > $R/cv5.log 2>&1 ) &
wait
echo done > $R/DONE55
