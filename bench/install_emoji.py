"""Install the emoji text-to-image artefacts (built by the commands of docs/REFERENCE.md, "Emoji")
into the package: `autonat sample --model emoji --prompt "red apple"` then works on a fresh clone.

    python bench/install_emoji.py --work runs/emoji [--model uvit]

Writes src/autonat/assets/emoji/: `uvit-small/` (EMA weights stored as fp16, its `tokenizer/`
and `text_encoder/` inside, `strategies/T4.json`, `T8.json` from the searches) and `featnet/`
(the emoji feature network defining fid_emoji). Every piece is checked to load before anything
is replaced.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from autonat.assets import ASSETS
from autonat.bundle import Bundle
from autonat.io import load_json
from autonat.metrics.features import FeatureNet
from autonat.models.registry import save_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="runs/emoji")
    ap.add_argument("--model", default="uvit", help="which trained model directory of --work (uvit, enat)")
    args = ap.parse_args()
    work = Path(args.work)
    bundle = Bundle.load(str(work / args.model))
    dest = ASSETS / "emoji"
    with tempfile.TemporaryDirectory(dir=ASSETS) as tmp:
        stage = Path(tmp) / "emoji"
        m = bundle.model
        training = {**m.meta.get("training", {}), "tokens": "emoji train (Noto, emoji-datasource-google 16.0.0)",
                    "text_encoder": {**m.meta["training"]["text_encoder"], "spec": "text_encoder"}}
        model_dir = stage / "uvit-small"
        save_model(m.compact(), model_dir, tokenizer={**m.meta["tokenizer"], "name": "tokenizer"},
                   training=training, fp16=True)
        bundle.tokenizer.save_pretrained(model_dir / "tokenizer")
        bundle.conditioner.encoder.save_pretrained(model_dir / "text_encoder")
        (model_dir / "strategies").mkdir()
        for T in (4, 8):
            f = work / f"search-{args.model}-T{T}" / "best_strategy.json"
            if f.is_file():
                shutil.copy(f, model_dir / "strategies" / f"T{T}.json")
        net = FeatureNet.from_pretrained(work / "featnet")
        net.save_pretrained(stage / "featnet", load_json(work / "featnet" / "config.json").get("metrics"))
        Bundle.load(str(model_dir))                 # loads as a user's directory before it is installed
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(str(stage), dest)
    print(f"installed {dest}: {sorted(p.name for p in dest.iterdir())}")


if __name__ == "__main__":
    main()
