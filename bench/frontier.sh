#!/usr/bin/env bash
# The whole FID-vs-cost frontier: every NAT series and the diffusion baseline, n = 10k
# fresh samples per point, FLOPs, batch-256 throughput and batch-1 latency measured in this run;
# writes OUT/*.jsonl (one per series; re-running resumes), OUT/frontier.png and OUT/table.md.
#   bash bench/frontier.sh [OUT_DIR] [extra bench/frontier.py options]     (hours on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/frontier}
shift || true
exec python bench/frontier.py --out "$out" "$@"
