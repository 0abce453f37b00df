"""Golden tokens of the shipped models: a fixed seed, fixed labels, fp32 sampling; the sha256 of the
token ids must not change unless a change of behaviour is intended (then regenerate with
`python tests/test_golden.py --write` and explain the difference in the commit)."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden" / "shipped_tokens.json"
CASES = [(m, s, t) for m in ("fashion-mnist", "fashion-mnist-enat", "emoji") for s in ("maskgit", "autonat")
         for t in (4, 8)]
# the text model's conditions: seen and held-out emoji names, in turn
PROMPTS = ("red apple", "cat face", "rocket", "tiger face", "snowman", "green apple", "panda face", "crocodile",
           "christmas tree", "france flag")


def tokens_hash(model: str, strategy: str, steps: int) -> str:
    from autonat.bundle import Bundle
    from autonat.sampling import IndexedNoise, sample
    bundle = Bundle.load(model)
    st = bundle.strategy(strategy, steps)
    cond = bundle.conditioner.condition([PROMPTS[i % 10] for i in range(20)] if bundle.is_text else
                                        torch.arange(20) % 10)
    ids = sample(bundle.inference_model(bf16=False), st, cond, IndexedNoise(123, tuple(range(20))), chunk=32).ids
    return hashlib.sha256(ids.numpy().astype("int64").tobytes()).hexdigest()[:16]


@pytest.mark.slow
@pytest.mark.parametrize("model,strategy,steps", CASES, ids=lambda v: str(v))
def test_shipped_models_sample_the_golden_tokens(model, strategy, steps):
    want = json.loads(GOLDEN.read_text())[f"{model}/{strategy}/T{steps}"]
    assert tokens_hash(model, strategy, steps) == want


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.write_text(json.dumps({f"{m}/{s}/T{t}": tokens_hash(m, s, t) for m, s, t in CASES}, indent=1) + "\n")
