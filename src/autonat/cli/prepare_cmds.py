"""`autonat prepare coco|emoji`: public captioned sets -> captioned image folders."""
from __future__ import annotations

from pathlib import Path

from .common import print_json


def register(sub, common) -> None:
    p = sub.add_parser("prepare", help="turn a public captioned set into a captioned image folder")
    psub = p.add_subparsers(dest="prepare_command", metavar="SET")
    psub.required = True
    c = psub.add_parser("coco", parents=[common], help="MS-COCO 2014 captions (links to the images, "
                                                      "every caption, optional supercategory labels)")
    c.add_argument("--out", required=True, help="a new directory")
    for split, src in (("train", "train2014"), ("test", "val2014")):
        c.add_argument(f"--{split}-images", required=True, type=Path, help=f"the {src} image directory")
        c.add_argument(f"--{split}-captions", required=True, type=Path, help=f"captions_{src}.json")
        c.add_argument(f"--{split}-instances", type=Path, default=None,
                       help=f"instances_{src}.json (optional: a label per image)")
    c.add_argument("--test-limit", type=int, default=None, help="first N val images by id (FID-30K: 30000)")
    c.set_defaults(func=cmd_coco)
    e = psub.add_parser("emoji", parents=[common], help="Noto colour emoji (npm emoji-datasource-google "
                                                       "16.0.0), with a held-out split of unseen names")
    e.add_argument("out", help="a new directory")
    e.add_argument("--tgz", default=None, help="a tarball from `npm pack emoji-datasource-google@16.0.0` "
                                               "(default: run npm pack)")
    e.set_defaults(func=cmd_emoji)


def cmd_coco(args) -> int:
    from ..prepare.coco import build_coco
    splits = {s: {"images": getattr(args, f"{s}_images"), "captions": getattr(args, f"{s}_captions"),
                  "instances": getattr(args, f"{s}_instances")} for s in ("train", "test")}
    print_json(build_coco(args.out, splits, args.test_limit))
    return 0


def cmd_emoji(args) -> int:
    from ..prepare.emoji import build_emoji
    print_json(build_emoji(args.out, args.tgz))
    return 0
