"""Output helpers shared by the CLI command modules."""
from __future__ import annotations

import json
import sys
from typing import Any


def print_json(obj: Any) -> None:
    """One JSON object as the last line of stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def print_result(obj: dict, as_json: bool) -> None:
    """A result dict: one JSON line (--json) or aligned `key: value` lines."""
    if as_json:
        print_json(obj)
        return
    width = max((len(k) for k in obj), default=0)
    for k, v in obj.items():
        print(f"{k:>{width}}: {v}")


def info(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def show_progress(args) -> bool:
    return not getattr(args, "quiet", False)
