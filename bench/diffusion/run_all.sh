#!/usr/bin/env bash
# The whole pixel-diffusion peer run, unattended, one heavy job at a time:
#   nohup bash bench/diffusion/run_all.sh > runs/diffusion/run_all.out 2>&1 &
# 1. train the UNet at two learning rates (2100 steps x 128 = 268,800 images each: ~50 min on
#    2 free cores at the measured 89 img/s);
# 2. LR choice: n = 2000 FID of each (DPM-Solver++ 2M, 20 steps, w = 2, seed 0);
# 3. guidance sweep w = 1, 3 at n = 2000 on the better LR;
# 4. sampling speed in the three precisions (bf16 / autocast / fp32) at the chosen w, 8 steps
#    (time per step does not depend on the step count; 8 keeps the fp32 runs short).
# The n = 10k points (step sweep, DDIM, guidance sweep) are measured by bench/frontier.sh in the
# same run as the NAT points, so that their speeds are comparable.
# Re-running skips finished trainings (resumes interrupted ones) and evaluations already in
# the JSONL files. WAIT_PID=<pid>: first wait for a train.py still running from before.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-.venv/bin/python}
R=runs/diffusion
pred=${PRED:-v_prediction}   # PRED=epsilon TAG=unet: the first run (fails with 20-step solvers, README)
tag=${TAG:-unet-v}
steps=${STEPS:-2100}
if [ -n "${WAIT_PID:-}" ]; then
  while kill -0 "$WAIT_PID" 2>/dev/null; do sleep 20; done
fi
has_record() {  # has_record FILE CONDITION: does a JSON line r of FILE satisfy the Python CONDITION?
  [ -f "$1" ] && $py -c "
import json, sys
sys.exit(0 if any($2 for r in map(json.loads, open('$1'))) else 1)"
}
has() {  # has FILE MODEL GUIDANCE: is this (model, w) already evaluated in FILE?
  has_record "$1" "r['model'] == '$2' and r['guidance'] == float('$3')"
}
for lr in 1e-3 2e-4; do
  out=$R/$tag-lr$lr
  if [ ! -f "$out/model/model.safetensors" ]; then
    echo "train $out start $(date -Is)"
    resume=""; [ -d "$out/checkpoint" ] && resume=--resume
    $py bench/diffusion/train.py --out "$out" --lr "$lr" --steps "$steps" --batch-size 128 \
      --warmup 200 --ema 0.998 --prediction-type $pred --seed ${SEED:-0} $resume --quiet
    echo "train $out end $(date -Is)"
  fi
done
for lr in 1e-3 2e-4; do
  m=$R/$tag-lr$lr/model
  has $R/lr-choice.jsonl $m 2 || $py bench/diffusion/evaluate.py --model $m --scheduler dpmpp2m \
    --steps 20 --guidance 2 --n 2000 --seed 0 --speed-repeats 0 --latency-repeats 0 \
    --grid $R/$tag-lr$lr/grid_n2000_T20_w2.png --out $R/lr-choice.jsonl --quiet
done
best=$($py bench/diffusion/choice.py $R --tag $tag | cut -d" " -f1)
echo "best: $best"
for w in 1 3; do
  has $R/guidance.jsonl $best $w || $py bench/diffusion/evaluate.py --model $best --scheduler dpmpp2m \
    --steps 20 --guidance $w --n 2000 --seed 0 --speed-repeats 0 --latency-repeats 0 \
    --grid $(dirname $best)/grid_n2000_T20_w$w.png --out $R/guidance.jsonl --quiet
done
w=$($py bench/diffusion/choice.py $R --tag $tag | cut -d" " -f2)
echo "best guidance: $w"
for p in bf16 autocast fp32; do
  has_record $R/precision.jsonl "r['model'] == '$best' and r['precision'] == '$p'" ||
  $py bench/diffusion/evaluate.py --model $best --speed-only --steps 8 --guidance $w --precision $p \
    --speed-repeats 2 --latency-repeats 5 --out $R/precision.jsonl --quiet
done
echo "done $(date -Is)"
