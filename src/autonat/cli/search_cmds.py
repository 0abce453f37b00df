"""`autonat search`: AutoNAT's alternating search, or a generation-only search of a model."""
from __future__ import annotations

from .common import info, print_json, show_progress
from .options import add_config_args, config_from_args


def register(sub, common) -> None:
    from ..search.loop import SearchConfig
    p = sub.add_parser("search", parents=[common],
                       help="AutoNAT strategy search (resumable: re-run the same command)")
    p.add_argument("--out", required=True, help="search directory (trial store, results, report)")
    add_config_args(p, SearchConfig)
    p.set_defaults(func=cmd_search)


def cmd_search(args) -> int:
    from .. import distributed as D
    from ..search.loop import SearchConfig
    from ..search.run import run
    report = run(config_from_args(SearchConfig, args), args.out, log=info, show_progress=show_progress(args))
    if D.is_main():
        print_json({k: v for k, v in report.summary.items() if k != "alternations"}
                   | {"installed": report.installed})
    return 0
