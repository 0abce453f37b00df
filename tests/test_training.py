"""Training: loss only on masked positions, exact resume, DDP smoke test, CLI train."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from autonat.checkpoint import find_latest, load_checkpoint
from autonat.io import AutonatError, load_tensors
from autonat.models.registry import load_model
from autonat.rng import epoch_indices
from autonat.training import TrainConfig, train

from conftest import cc, tiny_uvit


def test_loss_ignores_unmasked_positions():
    """The U-ViT objective: the canvas has [MASK] exactly at the masked positions, and the loss is
    the mean cross-entropy over those positions only (not over all N)."""
    m = tiny_uvit()
    torch.manual_seed(0)
    ids = torch.randint(0, 32, (4, 49))
    mask = torch.zeros(4, 49, dtype=torch.bool)
    mask[:, :10] = True
    seen = {}

    def spy(inputs, cond, select=None):
        seen["inputs"], seen["select"] = inputs, select
        return m(inputs, cond, select=select)
    a = m.training_loss(ids, cc(torch.arange(4)), mask, label_smoothing=0.1, forward=spy)
    assert torch.equal(seen["inputs"], torch.where(mask, torch.full_like(ids, m.mask_id), ids))
    full = m(seen["inputs"], cc(torch.arange(4)))
    per_pos = torch.nn.functional.cross_entropy(full.transpose(1, 2), ids, reduction="none", label_smoothing=0.1)
    assert torch.allclose(a.loss, per_pos[mask].mean(), atol=1e-6)
    assert torch.equal(seen["select"], mask)          # only masked rows reach the head and the loss
    assert int(a.count) == 40


def _cfg(cache, **kw):
    base = dict(tokens=str(cache.path), model="tiny", batch_size=8, steps=6, warmup=2,
                ckpt_every=3, log_every=1, bf16=False, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def train_until_killed(monkeypatch, cfg, out, at_step):
    """Run `train` and stop the process right after the checkpoint of `at_step` is written."""
    import autonat.training as T
    from conftest import run_until_killed
    run_until_killed(monkeypatch, T, lambda: train(cfg, out, show_progress=False), at_step)


def test_data_order_covers_each_example_once_per_epoch():
    seen = torch.cat([epoch_indices(64, 8, s, seed=0) for s in range(8)])
    assert sorted(seen.tolist()) == list(range(64))   # no drawn-and-discarded batches


@pytest.mark.parametrize("model", ["tiny", "enat-tiny"])
def test_resume_equals_uninterrupted_and_uses_the_checkpoint(tmp_path, token_cache, model, monkeypatch):
    cfg = _cfg(token_cache, model=model)
    train(cfg, tmp_path / "full", show_progress=False)
    train_until_killed(monkeypatch, cfg, tmp_path / "cut", at_step=3)
    assert load_checkpoint(tmp_path / "cut")["meta"]["step"] == 3
    train(cfg, tmp_path / "cut", resume=True, show_progress=False)
    a = load_tensors(tmp_path / "full" / "model.safetensors")
    b = load_tensors(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    la = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in la if "loss" in r] == [r["loss"] for r in lb if "loss" in r]
    assert [r["step"] for r in lb if "loss" in r] == list(range(1, 7))      # steps 1-3 logged once
    # A resume continues from the checkpoint, not from scratch: tamper with the saved weights
    # of an interrupted run and the resumed result must change (a restart would not notice).
    train_until_killed(monkeypatch, cfg, tmp_path / "tampered", at_step=3)
    ck = find_latest(tmp_path / "tampered")
    from autonat.io import atomic_save_tensors
    w = load_tensors(ck / "model.safetensors")
    atomic_save_tensors(ck / "model.safetensors", {k: v + 0.01 if v.is_floating_point() else v for k, v in w.items()})
    train(cfg, tmp_path / "tampered", resume=True, show_progress=False)
    c = load_tensors(tmp_path / "tampered" / "model.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_resume_refuses_changed_options(tmp_path, token_cache, monkeypatch):
    train_until_killed(monkeypatch, _cfg(token_cache), tmp_path / "r", at_step=3)
    with pytest.raises(AutonatError, match="options differ"):
        train(_cfg(token_cache, lr=0.5), tmp_path / "r", resume=True, show_progress=False)
    with pytest.raises(AutonatError, match="init-from"):       # a longer run: says what to do
        train(_cfg(token_cache, steps=12), tmp_path / "r", resume=True, show_progress=False)
    with pytest.raises(AutonatError, match="already holds"):
        train(_cfg(token_cache), tmp_path / "r", show_progress=False)
    # the normalised spellings of the same run are the same run
    assert _cfg(token_cache, mask_dist="cosine") == _cfg(token_cache, mask_dist="arccos")
    assert _cfg(token_cache, model="uvit-tiny") == _cfg(token_cache, model="tiny")


def test_trained_model_records_its_tokenizer(tmp_path, token_cache):
    train(_cfg(token_cache, steps=2), tmp_path / "m", show_progress=False)
    m = load_model(tmp_path / "m")
    assert m.meta["tokenizer"]["identity"] == token_cache.manifest["tokenizer_identity"]
    assert m.meta["training"]["mask_dist"] == "beta:12,3"
    assert (tmp_path / "m" / "tokenizer" / "config.json").is_file()     # self-contained


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny", "enat-tiny"])
def test_ddp_two_processes(tmp_path, token_cache, model):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUTONAT_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "autonat", "train", "--tokens", str(token_cache.path), "--model", model, "--out", str(out),
           "--steps", "4", "--batch-size", "8", "--no-bf16", "--device", "cpu", "--log-every", "1",
           "--ckpt-every", "2", "--warmup", "1", "--quiet"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["world_size"] == 2
    assert [rec["step"] for rec in log if "loss" in rec] == [1, 2, 3, 4]
    assert load_model(out).meta["training"]["batch_size"] == 8
