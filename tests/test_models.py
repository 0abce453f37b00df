"""Model registry, persistence and architecture invariants."""
from __future__ import annotations

import pytest
import torch

from autonat.io import AutonatError
from autonat.models.registry import (build_model, count_parameters, load_model, model_config,
                                     parse_model_name, save_model)

from conftest import cc, tiny_uvit


def test_named_l_sizes_are_the_released_models():
    """`L` / `enat-L` with the authors' layout have exactly the released checkpoints' parameter
    shapes (a wrong depth, width or head count in the size table fails here)."""
    import json
    from pathlib import Path

    from autonat.convert import enat_from_official, uvit_from_official
    keys = Path(__file__).parent / "fixtures" / "official" / "released_keys"
    for name, fn, model_name in (("autonat-L-imagenet256", uvit_from_official, "autonat-L"),
                                 ("enat-L-imagenet256", enat_from_official, "enat-L-official")):
        spec = json.loads((keys / f"{name}.keys.json").read_text())["state_dict"]
        cfg, _, _ = fn({k: torch.empty(shape, device="meta") for k, shape in spec.items()})
        named = model_config(model_name, codebook_size=cfg.codebook_size, seq_len=cfg.seq_len,
                             num_classes=cfg.num_classes)
        assert named == cfg, (named, cfg)


def test_model_names():
    tiny = build_model("tiny", codebook_size=1024, seq_len=49, num_classes=10)
    assert count_parameters(tiny) < 1_000_000
    assert parse_model_name("enat-small") == ("enat", "small", "") and parse_model_name("S") == ("uvit", "S", "")
    assert parse_model_name("enat-small-d2") == ("enat", "small-d2", "")
    assert parse_model_name("autonat-L") == ("uvit", "L", "official")
    assert parse_model_name("enat-L-official") == ("enat", "L", "official")
    with pytest.raises(AutonatError, match="unknown model 'huge'"):
        model_config("huge", codebook_size=8, seq_len=4, num_classes=2)
    with pytest.raises(AutonatError, match="odd"):
        model_config("tiny", codebook_size=8, seq_len=4, num_classes=2, depth=4)


@pytest.mark.parametrize("grid,K", [(7, 16), (8, 512), (16, 1024)])
def test_any_grid_and_codebook(grid, K):
    m = tiny_uvit(codebook_size=K, seq_len=grid * grid)
    ids = torch.randint(0, K + 1, (2, grid * grid))
    assert m(ids, cc(torch.tensor([0, 10]))).shape == (2, grid * grid, K)


def test_query_and_select_agree_with_full_logits():
    m = tiny_uvit()
    ids = torch.randint(0, 33, (3, 49))
    lab = torch.tensor([1, 2, 10])
    full = m(ids, cc(lab))
    q = torch.tensor([[0, 5, 9]] * 3)
    assert torch.allclose(m(ids, cc(lab), query=q), full.gather(1, q.unsqueeze(-1).expand(-1, -1, 32)), atol=1e-6)
    sel = ids == 32
    assert torch.allclose(m(ids, cc(lab), select=sel), full[sel], atol=1e-6)


def test_save_load_roundtrip(tmp_path):
    m = tiny_uvit()
    save_model(m, tmp_path / "m", tokenizer={"name": "x", "identity": "abc"})
    back = load_model(tmp_path / "m")
    ids = torch.randint(0, 33, (2, 49))
    assert torch.equal(back(ids, cc(torch.tensor([0, 1]))), m(ids, cc(torch.tensor([0, 1]))))
    assert back.meta["tokenizer"]["identity"] == "abc" and back.identity
    save_model(m, tmp_path / "h", fp16=True)
    half = load_model(tmp_path / "h")
    assert torch.allclose(half(ids, cc(torch.tensor([0, 1]))), m(ids, cc(torch.tensor([0, 1]))), atol=1e-2)
    assert (tmp_path / "h" / "model.safetensors").stat().st_size < (tmp_path / "m" / "model.safetensors").stat().st_size
