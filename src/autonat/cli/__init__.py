"""The `autonat` command line: thin shells over the library (one module per command group)."""
from __future__ import annotations

import argparse
import os
import sys

from ..io import AutonatError


def build_parser() -> argparse.ArgumentParser:
    from . import data_cmds, demo_cmds, eval_cmds, model_cmds, search_cmds, tool_cmds
    p = argparse.ArgumentParser(
        prog="autonat",
        description="Token-based image synthesis with non-autoregressive Transformers "
                    "(AutoNAT strategy search, ENAT).")
    p.add_argument("--version", action="version", version=f"autonat {__import__('autonat').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (data_cmds, model_cmds, eval_cmds, search_cmds, tool_cmds, demo_cmds):
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False):
        os.environ["AUTONAT_PROGRESS"] = "0"
    try:
        rc = args.func(args)
    except AutonatError as e:
        print(f"autonat: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autonat: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)
