#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut (config: [tool.mutmut] in pyproject.toml):
# every mutant of sampling, strategy, masking, ENAT, the trainer's resume/checkpoints and the
# search's trial store is run against the fast tests; prints the kill rate and lists survivors.
#   pip install -e '.[dev]' && bash bench/mutation.sh [--max-children N]     (hours on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 AUTONAT_PROGRESS=0
mutmut run --max-children "${2:-2}" || true
mutmut results --all true > runs/mutation-results.txt || mutmut results > runs/mutation-results.txt
python - <<'PY'
import collections, re
lines = open("runs/mutation-results.txt").read().splitlines()
status = collections.Counter()
for ln in lines:
    m = re.match(r"\s*(\S+): (\w+)", ln)
    if m:
        status[m.group(2)] += 1
total = sum(status.values())
killed = status.get("killed", 0) + status.get("timeout", 0)
print(dict(status))
print(f"mutation score: {killed}/{total} = {100 * killed / max(total, 1):.1f} % killed (timeouts count as killed)")
PY
