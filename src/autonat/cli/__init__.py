"""The `autonat` command line: thin shells over the library (one module per command group).

Every command parses its options into the library's config dataclasses (`cli.options`), calls
one library function and prints its result. Errors caused by input (`AutonatError`, and OS
errors such as a full disk or a permission denied) print `autonat: error: ...` and exit with
code 2; a job stopped by SIGINT/SIGTERM after saving a checkpoint exits with 128 + the signal.
Tracebacks are shown only with `--debug` (or AUTONAT_DEBUG=1).
"""
from __future__ import annotations

import argparse
import os
import sys

from ..io import AutonatError, Interrupted


def build_parser() -> argparse.ArgumentParser:
    from . import (convert_cmds, data_cmds, demo_cmds, eval_cmds, model_cmds, prepare_cmds, search_cmds, text_cmds,
                   tool_cmds)
    p = argparse.ArgumentParser(
        prog="autonat",
        description="Token-based image synthesis with non-autoregressive Transformers "
                    "(AutoNAT strategy search, ENAT).")
    p.add_argument("--version", action="version", version=f"autonat {__import__('autonat').__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (prepare_cmds, data_cmds, model_cmds, text_cmds, eval_cmds, search_cmds, convert_cmds, tool_cmds,
                   demo_cmds):
        module.register(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("AUTONAT_DEBUG") == "1"
    if getattr(args, "quiet", False):
        os.environ["AUTONAT_PROGRESS"] = "0"
    try:
        rc = args.func(args)
    except AutonatError as e:
        if debug:
            raise
        print(f"autonat: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"autonat: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("autonat: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if debug:
            raise
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"autonat: error:{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    return int(rc or 0)
