"""The authors' released models, without the authors' code: golden fixtures computed once with
their code (tests/fixtures/official/README.md) are loaded through `autonat convert`'s functions
and compared with autonat's forward passes (fp32, max abs diff <= 1e-4) and its sampler (argmax
sampling: token-identical trajectories, with the authors' masked-count rules)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from autonat.convert import enat_from_official, uvit_from_official, vqgan_from_official
from autonat.conditioning import ClassCondition
from autonat.io import AutonatError
from autonat.models.contract import masked_positions
from autonat.models.enat import ENAT
from autonat.models.uvit import UViT
from autonat.presets import enat as enat_schedule
from autonat.sampling import IndexedNoise, sample
from autonat.strategy import from_official
from autonat.tokenizer.maskgit_vqgan import MaskGITVQGAN

FIX = Path(__file__).parent / "fixtures" / "official"
ATOL = 1e-4
K = 32



def _cond(m, labels):
    return ClassCondition(labels.long(), m.config.num_classes)

def _load(name):
    return (load_file(FIX / name / "weights.safetensors"), load_file(FIX / name / "io.safetensors"),
            json.loads((FIX / name / "config.json").read_text()))


def _build(cls, converted):
    cfg, state, ignored = converted
    m = cls(cfg)
    m.load_state_dict(state)
    return m.eval(), ignored


def _at_masked(full: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The authors' all-position logits [B, N, K] at the [MASK] positions of ids (autonat's query)."""
    q = masked_positions(ids == K)
    return full.gather(1, q.unsqueeze(-1).expand(-1, -1, full.shape[-1]))


def test_uvit_forward_matches_the_authors():
    w, io, _ = _load("uvit")
    m, ignored = _build(UViT, uvit_from_official(w, heads=2))
    assert ignored == [] and m.config.class_norm and m.config.depth == 5
    with torch.no_grad():
        logits = m(io["fwd.input_ids"], _cond(m, io["fwd.labels"].flatten()))
    assert float((logits - io["fwd.logits"]).abs().max()) <= ATOL


def test_uvit_greedy_generation_is_token_identical():
    """The authors' loop (floor counts, unconditional pass always) under argmax sampling and
    noise-free re-masking, through autonat's pure sampler."""
    w, io, cfg = _load("uvit")
    m, _ = _build(UViT, uvit_from_official(w, heads=2))
    st = from_official(cfg["generation"]["strategy"])
    st = type(st)(r=st.r, tau1=(0.0,) * st.steps, tau2=(0.0,) * st.steps, s=st.s, rounding=st.rounding,
                  always_uncond=st.always_uncond)
    out = sample(m, st, _cond(m, io["gen.labels"].flatten()), IndexedNoise(0, (0, 1)), trace=True)
    assert torch.equal(out.ids, io["gen_greedy.final_tokens"])
    for t, step in enumerate(out.trace[:-1]):                 # the canvas fed to every next step
        assert torch.equal(step["ids"], io["gen_greedy.ids_in"][t + 1])


def test_enat_forward_and_reuse_match_the_authors():
    w, io, _ = _load("enat")
    m, ignored = _build(ENAT, enat_from_official(w, heads=2, enc_dec=(2, 2)))
    assert ignored and all(k.startswith("prev_embedder.") for k in ignored)   # reported, not silent
    ids, lab = io["fwd.input_ids"], _cond(m, io["fwd.labels"].flatten())
    with torch.no_grad():
        assert float((m(ids, lab) - _at_masked(io["fwd.logits"], ids)).abs().max()) <= ATOL
        prev, cur, rl = io["reuse.prev_ids"], io["reuse.ids"], _cond(m, io["reuse.labels"].flatten())
        cache = m.extend_cache(prev, rl, None)
        reused, _ = m.step(cur, rl, masked_positions(cur == K), cache)
        plain, _ = m.step(cur, rl, masked_positions(cur == K), None)
    assert float((reused - _at_masked(io["reuse.logits"], cur)).abs().max()) <= ATOL
    assert float((plain - _at_masked(io["reuse.logits_noreuse"], cur)).abs().max()) <= ATOL
    assert float((reused - plain).abs().max()) > 1e-3          # reuse is not a recompute here


@pytest.mark.parametrize("flavour", ["gen_greedy", "gen_noise"])
def test_enat_every_step_with_its_caches_matches_the_authors(flavour):
    """Along the authors' own trajectory, the conditional and unconditional passes (each with its
    cache of projected features, P^k(f) for a token decoded k steps ago) give their logits."""
    w, io, _ = _load("enat")
    m, _ = _build(ENAT, enat_from_official(w, heads=2, enc_dec=(2, 2)))
    lab = _cond(m, io["gen.labels"])
    null = lab.null()
    caches = {"c": None, "u": None}
    for t in range(io[f"{flavour}.ids_in"].shape[0]):
        ids = io[f"{flavour}.ids_in"][t]
        q = masked_positions(ids == K)
        with torch.no_grad():
            for key, labels, ref in (("c", lab, "logits_cond"), ("u", null, "logits_uncond")):
                logits, caches[key] = m.decode_step(ids, labels, q, caches[key])
                assert float((logits - _at_masked(io[f"{flavour}.{ref}"][t], ids)).abs().max()) <= ATOL, (t, key)


def test_enat_greedy_generation_with_the_enat_preset_is_token_identical():
    w, io, _ = _load("enat")
    m, _ = _build(ENAT, enat_from_official(w, heads=2, enc_dec=(2, 2)))
    st = enat_schedule(4, samp_temp=6.0, mask_temp=0.0, cfg=2.5)
    st = type(st)(r=st.r, tau1=(0.0,) * 4, tau2=st.tau2, s=st.s, rounding=st.rounding, always_uncond=True)
    out = sample(m, st, _cond(m, io["gen.labels"]), IndexedNoise(0, (0, 1)), trace=True)
    assert out.masked_counts == [16, 14, 11, 6, 0]
    assert torch.equal(out.ids, io["gen_greedy.final_tokens"])


def test_vqgan_encodes_and_decodes_as_the_authors():
    w, io, _ = _load("vqgan")
    v, ignored = _build(MaskGITVQGAN, vqgan_from_official(w, image_size=32, groups=2))
    assert ignored == [] and v.config.factor == 16
    assert torch.equal(v.encode_raw(io["images"]), io["ids"])
    for ids, ref in (("ids", "decoded"), ("rand_ids", "decoded_rand")):
        out = v.decode_raw(io[ids])
        assert float((out - io[ref]).abs().max()) <= ATOL * max(1.0, float(io[ref].abs().max()))


def test_unknown_and_missing_keys_are_named():
    w, _, _ = _load("uvit")
    with pytest.raises(AutonatError, match="does not know: extra.weight"):
        uvit_from_official({**w, "extra.weight": torch.zeros(1)}, heads=2)
    with pytest.raises(AutonatError, match="missing key 'norm.weight'"):
        uvit_from_official({k: v for k, v in w.items() if k != "norm.weight"}, heads=2)
    with pytest.raises(AutonatError, match="--heads"):
        uvit_from_official(w)                                   # width 32 is no released size
    e, _, _ = _load("enat")
    with pytest.raises(AutonatError, match="--enc-dec"):
        enat_from_official(e, heads=2)


def test_convert_cli_writes_a_self_contained_model_that_samples(tmp_path, capsys):
    """.pth files under the authors' key names -> `autonat convert` -> Pipeline.from_pretrained."""
    import autonat
    from autonat.cli import main
    w, _, _ = _load("enat")
    v, _, _ = _load("vqgan")
    torch.save({"state_dict": w}, tmp_path / "enat.pth")
    torch.save(v, tmp_path / "vqgan.ckpt")
    argv = ["convert", "--checkpoint", str(tmp_path / "enat.pth"), "--vqgan", str(tmp_path / "vqgan.ckpt"),
            "--heads", "2", "--enc-dec", "2,2", "--image-size", "64", "--groups", "2", "--out", str(tmp_path / "m")]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["kind"] == "enat" and summary["ignored_keys"]
    assert main(argv) == 2                                     # never overwrites
    pipe = autonat.Pipeline.from_pretrained(tmp_path / "m")
    out = pipe([0, 3], num_steps=4, strategy="enat", bf16=False, progress=False)
    assert out.tokens.shape == (2, 4, 4) and out.images[0].size == (64, 64)
    assert out.strategy.rounding == "floor-unclamped" and out.strategy.always_uncond
    torch.save({"not": "a state dict", "x": [1, 2]}, tmp_path / "bad.pth")
    assert main(["convert", "--checkpoint", str(tmp_path / "bad.pth"), "--vqgan", str(tmp_path / "vqgan.ckpt"),
                 "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("name,kind,expect", [
    ("autonat-L-imagenet256", "uvit", dict(dim=768, depth=25, heads=8, seq_len=256, codebook_size=1024, num_classes=1000)),
    ("enat-L-imagenet256", "enat", dict(dim=1024, encoder_depth=22, decoder_depth=2, heads=16, seq_len=256,
                                        codebook_size=1024, num_classes=1000)),
    ("maskgit-vqgan-f16", "vqgan", dict(ch=128, ch_mult=(1, 1, 2, 2, 4), z_channels=256, codebook_size=1024)),
])
def test_the_released_key_sets_convert_completely(name, kind, expect):
    """The exact key names and shapes of the three released checkpoints (meta tensors: no memory)
    map onto autonat's models with nothing missing, nothing unknown, and the released dims."""
    from autonat.convert import detect
    spec = json.loads((FIX / "released_keys" / f"{name}.keys.json").read_text())["state_dict"]
    state = {k: torch.empty(shape, device="meta") for k, shape in spec.items()}
    assert detect(state) == kind
    fn = {"uvit": uvit_from_official, "enat": enat_from_official, "vqgan": vqgan_from_official}[kind]
    cfg, converted, ignored = fn(state)
    assert all(getattr(cfg, k) == v for k, v in expect.items()), cfg
    cls = {"uvit": UViT, "enat": ENAT, "vqgan": MaskGITVQGAN}[kind]
    with torch.device("meta"):
        model = cls(cfg)
    model.load_state_dict(converted, strict=True, assign=True)      # every tensor, right shape
    numel = lambda shape: int(torch.tensor(shape).prod())  # noqa: E731
    dropped = 1 if kind != "vqgan" else 0          # the output bias of [MASK], which is never predicted
    assert (sum(v.numel() for v in converted.values()) + sum(numel(spec[k]) for k in ignored) + dropped
            == sum(numel(s) for s in spec.values()))


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory):
    """A converted model (the ENAT fixture, 4x4 tokens, 64 px RGB through the converted VQGAN), a
    fake pytorch-fid Inception weight file (right keys, random values) and fake ImageNet statistics."""
    import numpy as np
    from autonat.convert import convert
    from autonat.metrics.inception import FIDInceptionV3
    root = tmp_path_factory.mktemp("imagenet")
    w, _, _ = _load("enat")
    v, _, _ = _load("vqgan")
    torch.save(w, root / "enat.pth")
    torch.save(v, root / "vqgan.ckpt")
    convert(root / "enat.pth", root / "model", vqgan=root / "vqgan.ckpt", heads=2, enc_dec=(2, 2), image_size=64,
            groups=2)
    torch.manual_seed(0)
    torch.save(FIDInceptionV3().state_dict(), root / "pt_inception-fake.pth")
    a = np.random.default_rng(0).normal(size=(2048, 64))
    np.savez(root / "imagenet256.npz", mu=np.zeros(2048), sigma=a @ a.T / 64)
    return root


def test_imagenet_evaluation_path_with_inception_and_imported_statistics(imagenet_like, capsys):
    from autonat.cli import main
    r = imagenet_like
    argv = ["evaluate", "--model", str(r / "model"), "--strategy", "enat", "--steps", "4", "--n", "6",
            "--batch-size", "3", "--features", "inception", "--inception-weights", str(r / "pt_inception-fake.pth"),
            "--reference-stats", str(r / "imagenet256.npz"), "--json", "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["metric"] == "inception" and "fid_inception" in res and res["reference"].endswith("imagenet256.npz")
    assert res["n"] == 6 and res["flops_per_image"] > 0


@pytest.mark.slow
def test_search_on_a_converted_model_under_torchrun(imagenet_like, tmp_path):
    import os
    import subprocess
    import sys
    r = imagenet_like
    out = tmp_path / "search"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "autonat",
           "search", "--only", "generation", "--model", str(r / "model"), "--init-strategy", "enat", "--steps", "4",
           "--num-samples", "4", "--n-final", "4", "--batch-size", "2", "--method", "spsa", "--max-updates", "1",
           "--screen", "starts", "--late-evals", "0",      # this test is about torchrun on a converted model
           "--features", "inception", "--inception-weights", str(r / "pt_inception-fake.pth"),
           "--ref-stats", str(r / "imagenet256.npz"), "--no-bf16", "--device", "cpu", "--quiet", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUTONAT_PROGRESS": "0"}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, "\n".join(ln for ln in p.stderr.splitlines() if "error" in ln.lower())[-4000:]
    best = json.loads((out / "best_strategy.json").read_text())
    assert best["steps"] == 4 and best["rounding"] == "floor-unclamped"        # the init's rules are kept
    assert (r / "model" / "strategies" / "T4.json").is_file()
    import sqlite3                                   # only the main rank writes the store
    with sqlite3.connect(out / "trials.sqlite") as db:
        assert db.execute("SELECT count(*) FROM events WHERE kind = 'generation_search'").fetchone()[0] == 1
