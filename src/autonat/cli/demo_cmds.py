"""`autonat demo`: the Gradio web demo (samples, decoding strip, cost) of a NAT, an ENAT and a
text-to-image model."""
from __future__ import annotations


def register(sub, common) -> None:
    p = sub.add_parser("demo", parents=[common],
                       help="web demo: class -> samples, decoding strip, GFLOPs and latency")
    p.add_argument("--model", default="fashion-mnist", help="NAT (U-ViT) model: shipped name or directory "
                                                            "(default: %(default)s)")
    p.add_argument("--enat-model", default="fashion-mnist-enat",
                   help="ENAT model: shipped name or directory, left out if it cannot be loaded (default: %(default)s)")
    p.add_argument("--text-model", default="emoji",
                   help="text-to-image model (prompt box): shipped name or directory, left out if it cannot be "
                        "loaded; '' = none (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 = all interfaces) "
                                                       "(default: %(default)s)")
    p.add_argument("--port", type=int, default=7860, help="(default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default: %(default)s)")
    p.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    import importlib.util

    from ..io import AutonatError
    if importlib.util.find_spec("gradio") is None:      # imported lazily, by autonat.app
        raise AutonatError("the demo needs gradio: pip install 'autonat[demo]'")
    if not 0 < args.port < 65536:
        raise AutonatError(f"--port must lie in 1..65535, got {args.port}")
    from ..assets import resolve
    for opt_name, value in (("--model", args.model), ("--enat-model", args.enat_model),
                            ("--text-model", args.text_model)):
        if value:
            try:
                resolve("model", value)
            except AutonatError as e:
                raise AutonatError(f"{opt_name}: {e}") from None
    from ..app import launch
    launch(model=args.model, enat_model=args.enat_model, host=args.host, port=args.port,
           device=args.device, share=args.share, text_model=args.text_model or None)
    return 0
