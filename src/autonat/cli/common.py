"""Options and output helpers shared by the CLI command modules."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_runtime_args(p: argparse.ArgumentParser, bf16_default: bool = True) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--bf16", dest="bf16", action="store_true", default=bf16_default,
                   help=f"bf16 autocast (default {'on' if bf16_default else 'off'}; attention stays fp32 on CPU)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="run in fp32")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="fashion-mnist",
                   help="'fashion-mnist' (found in /usr/share/datasets/fashion-mnist or the cache), a "
                        "directory of IDX files, or an image folder root/<class>/*.png")
    p.add_argument("--download", action="store_true",
                   help="download Fashion-MNIST from the official source if not found (sha256-verified)")
    p.add_argument("--resolution", type=int, default=None, help="resize/center-crop images to this size")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None, help="1 = grayscale, 3 = RGB")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable image files (they are counted and reported) instead of failing")


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
