#!/usr/bin/env bash
# Train on a lent GPU machine from what travels there: the working tree (the shipped model to
# start from) and a pack of training data made by scripts/pack_device_data.py (carried, e.g.
# data/device_pack). Stops cleanly before the call's limit and leaves the weights under $OUT.
#
#   device run (carry data/device_pack):  bash scripts/device_train.sh data/device_pack 480 [overrides...]
#   -> $OUT/$RUN.pt (weights, no optimizer state), $OUT/$RUN.log, $OUT/$RUN.metrics.jsonl (RUN=device_run)
#
# Arguments: the pack, the seconds to train (the data set-up comes before), then Hydra overrides
# for transcribe.train (e.g. train.init_from=..., train.learning_rate=...).
set -euo pipefail
PACK=${1:?pack folder}; SECONDS_TO_TRAIN=${2:?seconds}; shift 2
OUT=${OUT:-runs/device_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# DEVICE=cpu and SKIP_INSTALL=1 try the same steps on this machine (a smoke test before a lease).
if [ -z "${SKIP_INSTALL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$PACK"/wheels/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
RUN=${RUN:-device_run}   # a second call in the same command (another RUN) reuses the decoded data
DATA=/tmp/device_data/$(basename "$PACK")
rm -rf runs/$RUN
if [ ! -f $DATA/.decoded ]; then
mkdir -p $DATA && tar xzf "$PACK/labels.tar.gz" -C $DATA
# Opus -> float WAV once, so training crops seek exactly and cheaply.
python3 - "$PACK/train" $DATA <<'EOF'
import sys, soundfile as sf
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
def one(p):
    y, sr = sf.read(p, dtype="float32")
    out = dst / p.relative_to(src).with_suffix(".wav")
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, y, sr, subtype="FLOAT")
    return len(y) / sr
with ProcessPoolExecutor(8) as pool:
    secs = sum(pool.map(one, sorted(src.rglob("*.ogg"))))
print(f"decoded {secs / 3600:.2f} h of audio")
EOF
touch $DATA/.decoded
fi
set +e
timeout --signal=TERM "$SECONDS_TO_TRAIN" python3 -m transcribe.train run_name=$RUN experiment=sampled \
  data.root=$DATA data.val_glob=null 'data.extra_train_roots=[]' 'data.extra_val_roots=[]' \
  augment.room.bank_size=50 augment.room.cache_dir="$PACK/rooms" data.cache_dir=/tmp/features \
  train.device=${DEVICE:-cuda} train.num_threads=2 train.num_workers=${WORKERS:-15} train.loader_workers=${WORKERS:-14} train.max_steps=100000 \
  train.checkpoint_every=100 train.log_every=25 "$@" 2>&1 | tee "$OUT/$RUN.log"
rc=${PIPESTATUS[0]}
set -e
echo "training exit status $rc (124 = stopped at the time limit, as planned)"
ls -la runs/$RUN/checkpoints
cp runs/$RUN/metrics.jsonl "$OUT/$RUN.metrics.jsonl" 2>/dev/null || true
# Weights only (no optimizer state): small enough to carry into a next call as train.init_from.
python3 - runs/$RUN/checkpoints/last.pt "$OUT/$RUN.pt" <<'EOF'
import sys, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
print("step", state.get("step"), "entries", sorted(state))
torch.save({k: v for k, v in state.items() if k not in ("optimizer_state", "scheduler_state")}, sys.argv[2])
EOF
