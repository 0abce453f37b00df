#!/usr/bin/env bash
# A second training seed of each peer family's headline point, unattended,
# resumable and idempotent, one heavy job at a time:
#
#   nohup bash bench/peer_seeds.sh runs/frontier2 > runs/peer_seeds.out 2>&1 &
#   SEED=2 FAMILIES="latent ar" bash bench/peer_seeds.sh runs/frontier2     # another seed, two families
#
# For each family it trains the peer with --seed SEED on the NAT's budget (resuming an interrupted
# training, skipping a finished one), then evaluates it at the settings of that family's headline
# points in the frontier (n = 10000, sampling seed 10^6, exactly as the seed-0 points in OUT) and
# appends the rows, each naming its train_seed, to OUT/seeds/<family>.jsonl. A setting already there
# for SEED is not evaluated again. `python bench/frontier.py --out OUT --table-only` then prints the
# seed table (FID and precision / recall per training seed, and the spread).
#
#   latent  bench/latent_peer.py, ~38 min + ~15 min: DPM-Solver++ 2M, w = 2, 16 and 8 steps
#   ar      bench/ar_peer.py,     ~51 min + ~3 min:  temperature 1.1, no top-k, guidance 1
#   pixel   bench/diffusion/train.py, ~50 min + ~25 min: DPM-Solver++ 2M, w = 2, 15 and 10 steps
#           (FID only: the frontier's pixel timings are measured separately)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/peer_seeds.sh OUT   (the frontier directory, e.g. runs/frontier2)}
py=${PYTHON:-.venv/bin/python}
seed=${SEED:-1}
tokens=${TOKENS:-runs/reference/tokens-train}
families=${FAMILIES:-latent ar pixel}
mkdir -p "$out/seeds"

evaluated() {  # evaluated FILE CONDITION: is there a row of training seed $seed satisfying CONDITION?
  [ -f "$1" ] && $py -c "
import json, sys
rows = [json.loads(l) for l in open('$1') if l.strip()]
sys.exit(0 if any(r.get('train_seed') == $seed and ($2) for r in rows) else 1)"
}
train() {  # train DIR COMMAND...: run COMMAND (with --resume if DIR has a checkpoint) unless DIR/model exists
  local dir=$1; shift
  if [ -f "$dir/model/model.safetensors" ]; then echo "trained: $dir"; return; fi
  local resume=""; [ -d "$dir/checkpoint" ] && resume=--resume
  echo "train $dir $(date -Is)"
  "$@" $resume
  echo "trained $dir $(date -Is)"
}

for fam in $families; do
  case $fam in
    latent)
      d=runs/latent/seed$seed
      train $d $py bench/latent_peer.py train --tokens "$tokens" --out $d --seed "$seed"
      for steps in 16 8; do
        evaluated "$out/seeds/latent.jsonl" "r['steps'] == $steps and r['guidance'] == 2.0" ||
          $py bench/latent_peer.py evaluate --model $d/model --steps $steps --guidance 2 --n 10000 \
            --seed 1000000 --out "$out/seeds/latent.jsonl"
      done ;;
    ar)
      d=runs/ar/seed$seed
      train $d $py bench/ar_peer.py train --tokens "$tokens" --out $d --seed "$seed"
      evaluated "$out/seeds/ar.jsonl" "r['temperature'] == 1.1 and r['guidance'] == 1.0" ||
        $py bench/ar_peer.py evaluate --model $d/model --temperature 1.1 --top-k 0 --guidance 1 --n 10000 \
          --seed 1000000 --out "$out/seeds/ar.jsonl" ;;
    pixel)
      d=runs/diffusion/unet-v-lr1e-3-seed$seed
      train $d $py bench/diffusion/train.py --out $d --lr 1e-3 --steps 2100 --batch-size 128 --warmup 200 \
        --ema 0.998 --prediction-type v_prediction --seed "$seed" --quiet
      for steps in 15 10; do
        evaluated "$out/seeds/diffusion-dpmpp2m.jsonl" "r['steps'] == $steps and r['guidance'] == 2.0" ||
          $py bench/diffusion/evaluate.py --model $d/model --scheduler dpmpp2m --steps $steps --guidance 2 \
            --n 10000 --seed 1000000 --batch-size 16 --speed-repeats 0 --latency-repeats 0 --quiet \
            --out "$out/seeds/diffusion-dpmpp2m.jsonl"
      done ;;
    *) echo "unknown family '$fam' (latent, ar, pixel)" >&2; exit 2 ;;
  esac
done
$py bench/frontier.py --out "$out" --table-only
echo "done $(date -Is)"
