"""Run the README's "Train on your own images" commands verbatim, one after the other, and time them.

The commands are read from the README itself (the first ```bash block of that section, with
backslash continuations joined), so what is measured is exactly what a user copies. Each command
runs in a shell from the repository root with the current environment (activate the virtualenv
first, so `autonat` is on PATH); the first failing command stops the run. Durations go to
OUT/durations.jsonl and a Markdown table to stdout.

    source .venv/bin/activate && python bench/readme_own_data.py --out runs/digits
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Train on your own images"


def readme_commands(readme: Path) -> list[str]:
    """The commands of the section's first bash block (comments kept, continuations joined)."""
    text = readme.read_text()
    start = text.index(SECTION)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    if block is None:
        raise SystemExit(f"{readme}: no ```bash block under {SECTION!r}")
    joined = block.group(1).replace("\\\n", " ")
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/digits"), help="where durations.jsonl goes")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--dry-run", action="store_true", help="only print the commands")
    a = p.parse_args()
    cmds = readme_commands(a.readme)
    if a.dry_run:
        print("\n".join(cmds))
        return
    a.out.mkdir(parents=True, exist_ok=True)
    log = a.out / "durations.jsonl"
    rows = []
    for cmd in cmds:
        load = os.getloadavg()[0]
        t = time.perf_counter()
        r = subprocess.run(cmd, shell=True, cwd=ROOT, executable="/bin/bash")
        row = {"command": cmd, "seconds": round(time.perf_counter() - t, 1), "exit_code": r.returncode,
               "loadavg_1m_before": round(load, 2), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        rows.append(row)
        with open(log, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[{row['seconds']:8.1f} s] exit {r.returncode}: {cmd}", file=sys.stderr, flush=True)
        if r.returncode:
            break
    print("| command | wall-clock |\n|---|---|")
    for row in rows:
        print(f"| `{row['command']}` | {row['seconds'] / 60:.1f} min |")
    sys.exit(rows[-1]["exit_code"] if rows else 0)


if __name__ == "__main__":
    main()
