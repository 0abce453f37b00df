"""aMUSEd (diffusers) behind autonat's contract, on tiny random-weight pipelines built offline the
way diffusers' own tests build theirs: loading, bad pipelines, and token parity between autonat's
sampler (preset `amused`, noise `AmusedNoise`) and diffusers' AmusedPipeline for the same
prompts, steps, guidance, temperatures and torch.Generator."""
import json
import os
import shutil
import warnings

import pytest
import torch

if os.environ.get("AUTONAT_REQUIRE_TEXT") != "1":   # .ci/run sets it: never skipped there
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")

from autonat.bundle import Bundle  # noqa: E402
from autonat.io import AutonatError  # noqa: E402
from autonat.muse import AmusedNoise  # noqa: E402
from autonat.pipeline import Pipeline  # noqa: E402
from autonat.presets import resolve_strategy  # noqa: E402
from muse_fixtures import tiny_amused_dir  # noqa: E402

PROMPTS = ["red apple", "a cat face", "dog"]


@pytest.fixture(scope="module")
def amused_dir(tmp_path_factory):
    return tiny_amused_dir(tmp_path_factory.mktemp("amused") / "pipe")


def _diffusers_tokens(path, prompts, steps, guidance, seed, temperature=(2, 0)):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import AmusedPipeline
        pipe = AmusedPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompts, num_inference_steps=steps, guidance_scale=guidance, temperature=temperature,
               generator=torch.Generator().manual_seed(seed), output_type="latent")
    return out.images.reshape(len(prompts), -1)


def test_an_amused_pipeline_loads_behind_the_model_contract(amused_dir):
    b = Bundle.load(str(amused_dir))
    m = b.model
    assert (m.arch, m.seq_len, m.codebook_size, m.mask_id) == ("amused", 16, 8, 31) and b.is_text
    assert b.tokenizer.num_tokens == 16 and b.tokenizer.codebook_size == 8
    out = Pipeline.from_pretrained(str(amused_dir))(prompt=["red apple", "dog"], num_steps=4, strategy="amused")
    assert out.tokens.shape == (2, 4, 4) and int(out.tokens.max()) < 8 and len(out.images) == 2
    assert out.images[0].size == (4, 4)


@pytest.mark.parametrize("steps,guidance", [(4, 10.0), (12, 3.0), (6, 1.0)])
def test_autonat_sampler_gives_diffusers_tokens_for_the_same_generator(amused_dir, steps, guidance):
    """Exact RNG parity: the preset follows the scheduler (float32 cosine counts, clamps,
    temperature linspace(2, 0)), the noise mode draws as it does (exponential race for
    torch.multinomial, then uniforms for the Gumbel), guidance in Muse's form; g = 1: no guidance."""
    want = _diffusers_tokens(amused_dir, PROMPTS, steps, guidance, seed=7)
    pipe = Pipeline.from_pretrained(str(amused_dir))
    got = pipe(prompt=PROMPTS, num_steps=steps, strategy=resolve_strategy(f"amused:{guidance}", steps),
               generator=AmusedNoise(torch.Generator().manual_seed(7)), bf16=False, progress=False)
    assert torch.equal(got.tokens.reshape(len(PROMPTS), -1), want)


def test_parity_needs_every_piece(amused_dir):
    """With autonat's own noise, or the logits form of guidance, the tokens differ: the test above
    is not passing by accident."""
    want = _diffusers_tokens(amused_dir, PROMPTS, 8, 10.0, seed=3)
    pipe = Pipeline.from_pretrained(str(amused_dir))
    st = resolve_strategy("amused", 8)
    own_noise = pipe(prompt=PROMPTS, num_steps=8, strategy=st, generator=torch.Generator().manual_seed(3),
                     bf16=False, progress=False).tokens.reshape(len(PROMPTS), -1)
    assert not torch.equal(own_noise, want)
    parity = pipe(prompt=PROMPTS, num_steps=8, strategy=st, generator=AmusedNoise(torch.Generator().manual_seed(3)),
                  bf16=False, progress=False).tokens.reshape(len(PROMPTS), -1)
    assert torch.equal(parity, want)


def test_golden_tokens_of_the_tiny_pipeline(amused_dir):
    """Pins the tokens (diffusers' and autonat's, equal above) of one case of this fixture."""
    got = Pipeline.from_pretrained(str(amused_dir))(
        prompt=["red apple"], num_steps=4, strategy="amused", generator=AmusedNoise(torch.Generator().manual_seed(0)),
        bf16=False, progress=False).tokens.flatten().tolist()
    assert got == _diffusers_tokens(amused_dir, ["red apple"], 4, 10.0, seed=0).flatten().tolist()
    assert got == [4, 5, 4, 3, 6, 5, 5, 2, 1, 3, 4, 3, 4, 3, 7, 5]      # diffusers 0.42.1 / torch 2.13, CPU


def test_bad_pipelines_and_prompts_are_clear_errors(amused_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(amused_dir, other)
    shutil.rmtree(other / "vqvae")
    with pytest.raises(AutonatError, match="missing: vqvae"):
        Bundle.load(str(other))
    with pytest.raises(AutonatError, match="predicts 8 codes but the VQ-VAE has 16"):
        Bundle.load(str(tiny_amused_dir(tmp_path / "mismatch", vq_codebook=16)))
    shape = tmp_path / "shape"
    shutil.copytree(amused_dir, shape)
    cfg = json.loads((shape / "vqvae" / "config.json").read_text())
    cfg["num_vq_embeddings"] = 16                 # config and weights disagree
    (shape / "vqvae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(AutonatError, match="cannot load the aMUSEd pipeline: .*size mismatch"):
        Bundle.load(str(shape))
    broken = tmp_path / "broken"
    shutil.copytree(amused_dir, broken)
    (broken / "transformer" / "config.json").write_text("{not json")
    with pytest.raises(AutonatError, match="cannot load the aMUSEd pipeline"):
        Bundle.load(str(broken))
    sd = tmp_path / "sd"
    sd.mkdir()
    (sd / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(AutonatError, match="pipeline directory of class 'StableDiffusionPipeline'"):
        Bundle.load(str(sd))
    pipe = Pipeline.from_pretrained(str(amused_dir))
    with pytest.raises(AutonatError, match="tokens long; aMUSEd's tokenizer takes 16"):
        pipe(prompt=["red apple " * 12], num_steps=2, strategy="amused")
    with pytest.raises(AutonatError, match="not class labels"):
        pipe(class_labels=[0], num_steps=2)


def test_muse_guidance_is_the_pipelines_arithmetic_bit_for_bit():
    """l_u + g (l_c - l_u) as the pipeline computes it; the logits form l_c + s (l_c - l_u) is the
    same l in exact arithmetic but not in float32 (which is why the preset uses `muse`)."""
    from autonat.sampling import guided_logits
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(4, 64, 1024, generator=g), torch.randn(4, 64, 1024, generator=g)
    for scale in (10.0, 3.0, 7.5):
        want = u + scale * (c - u)
        assert torch.equal(guided_logits(c, u, scale - 1, "muse"), want)
        assert not torch.equal(guided_logits(c, u, scale - 1, "logits"), want)
    assert torch.equal(guided_logits(c, u, 0.0, "muse"), c)


def test_float32_floor_is_the_schedulers_count_where_the_tolerant_floor_is_not():
    """N = 16, T = 12, step 8: 16 cos(pi/3) is 7.9999995 in float32; the scheduler masks 7."""
    st = resolve_strategy("amused", 12)
    assert st.masked_counts(16)[8] == 7
    from dataclasses import replace
    assert replace(st, rounding="floor").masked_counts(16)[8] == 8


def _stock_pipeline(path, scheduler=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import AmusedPipeline
        pipe = AmusedPipeline.from_pretrained(path, **({"scheduler": scheduler} if scheduler is not None else {}))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_autonat_scheduler_in_the_diffusers_pipeline_gives_the_samplers_tokens(amused_dir, tmp_path):
    """Any strategy with a constant s, plugged into AmusedPipeline: the same tokens as autonat's
    sampler with that strategy and the same generator; saved and loaded back with the pipeline."""
    from dataclasses import replace
    from autonat.muse.scheduler import AutonatScheduler
    from autonat.presets import maskgit
    st = replace(maskgit(6, remask_temperature=3.0).with_guidance(2.0), guidance="muse", rounding="floor-float32",
                 tau1=(1.5, 1.2, 1.0, 1.0, 0.8, 0.5))
    sched = AutonatScheduler.from_strategy(st, mask_token_id=31)
    pipe = _stock_pipeline(amused_dir, sched)
    out = pipe(PROMPTS, num_inference_steps=6, guidance_scale=sched.guidance_scale,
               generator=torch.Generator().manual_seed(11), output_type="latent").images.reshape(3, -1)
    ours = Pipeline.from_pretrained(str(amused_dir))(prompt=PROMPTS, num_steps=6, strategy=st, bf16=False,
                                                     generator=AmusedNoise(torch.Generator().manual_seed(11)),
                                                     progress=False).tokens.reshape(3, -1)
    assert torch.equal(out, ours)
    pipe.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "model_index.json").read_text())["scheduler"][1] == "AutonatScheduler"
    back = _stock_pipeline(tmp_path / "saved")
    assert type(back.scheduler).__name__ == "AutonatScheduler" and back.scheduler.strategy.tau1 == st.tau1
    again = back(PROMPTS, num_inference_steps=6, guidance_scale=2.0 + 1.0,
                 generator=torch.Generator().manual_seed(11), output_type="latent").images.reshape(3, -1)
    assert torch.equal(again, out)
    # the amused preset through this scheduler is the stock scheduler
    stock = _diffusers_tokens(amused_dir, PROMPTS, 5, 10.0, seed=2)
    mine = _stock_pipeline(amused_dir, AutonatScheduler.from_strategy(resolve_strategy("amused", 5), 31))(
        PROMPTS, num_inference_steps=5, guidance_scale=10.0, generator=torch.Generator().manual_seed(2),
        output_type="latent").images.reshape(3, -1)
    assert torch.equal(mine, stock)
    with pytest.raises(ValueError, match="varies per step"):
        AutonatScheduler.from_strategy(maskgit(4), mask_token_id=31)
    with pytest.raises(ValueError, match="num_inference_steps=6"):
        pipe(PROMPTS, num_inference_steps=4, guidance_scale=3.0, output_type="latent")


def test_the_generation_search_runs_on_amused_and_hands_its_strategy_to_diffusers(amused_dir, tmp_path):
    """Table 5's protocol on the tiny pipeline: search only the generation strategy from the
    amused preset (s fixed, so the stock pipeline can apply it) with F = FID + w (100 - CLIP
    score), common random numbers, a resumable trial store; the found strategy is installed
    beside the pipeline and runs in AmusedPipeline through AutonatScheduler."""
    import numpy as np
    from PIL import Image
    from autonat.muse.scheduler import AutonatScheduler
    from autonat.search.generation import GenSearchConfig
    from autonat.search.loop import SearchConfig
    from autonat.search.run import run
    from autonat.search.store import TrialStore
    from text_fixtures import tiny_clip_model_dir
    ref = tmp_path / "ref"
    ref.mkdir()
    rng = np.random.default_rng(0)
    for k in range(12):
        Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).save(ref / f"{k}.png")
    (ref / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{k}.png", "text": PROMPTS[k % 3]}) + "\n"
                                                for k in range(12)))
    pipe_dir = tmp_path / "pipe"
    shutil.copytree(amused_dir, pipe_dir)
    cfg = SearchConfig(only="generation", model=str(pipe_dir), ref_data=str(ref), init_strategy="amused", steps=4,
                       n=6, n_final=6, batch_size=6, bf16=False, screen="none", validate_top=1,
                       clip=str(tiny_clip_model_dir(tmp_path / "clip")), alignment_weight=0.1,
                       gen=GenSearchConfig(pattern_evals=3, max_updates=1, knobs=("r", "tau1", "tau2")))
    rep = run(cfg, tmp_path / "s", log=lambda *_: None)
    d = rep.final["detail"]["final-found"]
    assert d["objective"] == pytest.approx(d["fid"] + 0.1 * (100 - d["clip_score"]))
    assert rep.best.guidance == "muse" and len(set(rep.best.s)) == 1
    assert (pipe_dir / "strategies" / "T4.json").is_file() and rep.installed
    store = TrialStore(tmp_path / "s" / "trials.sqlite")
    n_evals = len(store.evaluations())
    store.close()
    assert run(cfg, tmp_path / "s", log=lambda *_: None).final == rep.final
    store = TrialStore(tmp_path / "s" / "trials.sqlite")
    assert len(store.evaluations()) == n_evals                   # resumed from the store
    store.close()
    found = Pipeline.from_pretrained(str(pipe_dir)).strategy("autonat", 4)
    sched = AutonatScheduler.from_strategy(found, mask_token_id=31)
    toks = _stock_pipeline(pipe_dir, sched)(PROMPTS, num_inference_steps=4, guidance_scale=sched.guidance_scale,
                                            generator=torch.Generator().manual_seed(0), output_type="latent").images
    ours = Pipeline.from_pretrained(str(pipe_dir))(prompt=PROMPTS, num_steps=4, strategy="autonat", bf16=False,
                                                   generator=AmusedNoise(torch.Generator().manual_seed(0)),
                                                   progress=False).tokens
    assert torch.equal(toks.reshape(3, -1), ours.reshape(3, -1))


def test_micro_conditioning_reaches_the_transformer_as_the_pipeline_passes_it(amused_dir):
    """(width, height, crop top, crop left, aesthetic score), as AmusedPipeline builds micro_conds."""
    b = Bundle.load(str(amused_dir))
    m = b.model
    cond = b.conditioner.condition(["red apple"])
    ids = torch.full((1, 16), m.mask_id)
    query = torch.arange(16).unsqueeze(0)
    default = m.decode_step(ids, cond, query)[0]
    m.set_micro_conditioning(aesthetic_score=3, crop=(1, 2))
    got = m.decode_step(ids, cond, query)[0]
    with torch.no_grad():
        want = m.transformer(ids.view(1, 4, 4), encoder_hidden_states=cond.states, pooled_text_emb=cond.pooled_emb,
                             micro_conds=torch.tensor([[4.0, 4.0, 1.0, 2.0, 3.0]]))
    assert torch.equal(got, want.reshape(1, 8, 16).permute(0, 2, 1)) and not torch.equal(got, default)


def test_a_hub_id_needs_the_prefix_and_fails_clearly_offline(monkeypatch, tmp_path):
    """`hf:org/name` is fetched with huggingface_hub (here offline: a clear error, no traceback);
    a missing local path that merely looks like org/name is never sent to the hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(AutonatError, match="hf:amused/no-such-pipeline: the hub download failed"):
        Bundle.load("hf:amused/no-such-pipeline")
    with pytest.raises(AutonatError, match="no such directory"):
        Bundle.load("amused/no-such-pipeline")
