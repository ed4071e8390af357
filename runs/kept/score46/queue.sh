#!/bin/bash
# round 46's evaluation, started when beats_open4.onnx exists: the default's downbeat F / time signature and the staff
# prior's staves right with beats_open4 as the staff model, on the 602 (the staves.onnx side: round 38's and round 43's rows)
cd /work/main
while [ ! -f runs/score46/beats_open4.onnx ]; do sleep 20; done
mkdir -p runs/score46/eval
F=$(cat runs/score46/eval_files.txt); W="python runs/score38/with_model.py runs/score46/beats_open4.onnx"
$W scripts/score_eval.py --beats notes --beats-only --out runs/score46/eval/db_new.json $F > runs/score46/eval/db_new.log 2>&1 &
$W scripts/notation_eval.py --seconds 60 --out runs/score46/eval/nt_new.json $F > runs/score46/eval/nt_new.log 2>&1
wait
