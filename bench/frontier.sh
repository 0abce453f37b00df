#!/usr/bin/env bash
# FID vs GFLOPs frontier (the paper's Figure 1 at our scale): every shipped model x strategy x T,
# n = 2000 samples per point (fresh seed 3), then `autonat plot frontier`.
#   bash bench/frontier.sh [OUT_DIR]      (~6 min on 2 CPU cores)
set -euo pipefail
out=${1:-runs/frontier}
mkdir -p "$out"
n=${N:-2000}
ev() {  # file model strategy steps
  autonat evaluate --model "$2" --strategy "$3" --steps "$4" --n "$n" --seed 3 --json --quiet | tail -n 1 >> "$out/$1.jsonl"
}
rm -f "$out"/*.jsonl
for T in 2 4 8 12; do ev "U-ViT maskgit" fashion-mnist maskgit $T; done
for T in 4 8; do ev "U-ViT autonat" fashion-mnist autonat $T; done
for T in 2 4 8 12; do ev "ENAT maskgit" fashion-mnist-enat maskgit $T; done
ev "ENAT autonat" fashion-mnist-enat autonat 8
autonat plot frontier "$out"/*.jsonl --out "$out/frontier.png"
