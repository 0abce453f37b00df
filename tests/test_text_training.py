"""A captioned folder through tokenize (caption states pre-extracted with the tokens) and training
(a text-conditional U-ViT, one caption per image drawn from a keyed stream)."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

if os.environ.get("AUTONAT_REQUIRE_TEXT") != "1":   # .ci/run sets it: never skipped there
    pytest.importorskip("transformers")

from autonat.cli import main  # noqa: E402
from autonat.io import AutonatError  # noqa: E402
from autonat.pipeline import Pipeline  # noqa: E402
from autonat.models.registry import load_model  # noqa: E402
from autonat.text.encoders import load_text_encoder  # noqa: E402
from autonat.tokens import TokenCache, TokenizeConfig, tokenize  # noqa: E402
from autonat.training import TrainConfig, train  # noqa: E402
from conftest import tiny_tokenizer  # noqa: E402
from text_fixtures import tiny_clip_dir  # noqa: E402

CAPTIONS = {"a.png": ["red apple", "an apple"], "b.png": ["cat face"], "c.png": ["a cat", "cat", "red cat"]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    folder = root / "set"
    folder.mkdir()
    for i, name in enumerate(CAPTIONS):
        Image.fromarray(np.full((28, 28), 60 * i, np.uint8)).save(folder / name)
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f, "text": t}) + "\n"
                                                   for f, t in CAPTIONS.items()))
    tiny_tokenizer().save_pretrained(root / "tok")
    clip = tiny_clip_dir(root / "clip")
    cache = tokenize(TokenizeConfig(tokenizer=str(root / "tok"), data=str(folder), text_encoder=str(clip)),
                     root / "cache", show_progress=False)
    return root, folder, clip, cache


def test_every_caption_is_stored_with_its_image_and_picked_by_u(setup):
    root, _, clip, cache = setup
    enc = load_text_encoder(str(clip))
    assert cache.text is not None and cache.text.captions() == [c for caps in CAPTIONS.values() for c in caps]
    assert cache.text.offsets.tolist() == [0, 2, 3, 6]
    want, mask = enc.encode(["red cat"])
    got = cache.text.condition(torch.tensor([2]), torch.tensor([0.99]))
    assert torch.allclose(got.states[0], want[0], atol=2e-3) and torch.equal(got.mask[0], mask[0])
    first = cache.batch(torch.tensor([2, 0]), caption=torch.tensor([0.0, 0.6]))[1]
    assert torch.allclose(first.states[0], enc.encode(["a cat"])[0][0], atol=2e-3)
    assert torch.allclose(first.states[1], enc.encode(["an apple"])[0][0], atol=2e-3)
    assert torch.allclose(first.null_states, enc.encode([""])[0][0], atol=2e-3)
    assert TokenCache.open(root / "cache").text.manifest["encoder_identity"] == enc.identity


def test_a_captioned_folder_needs_a_text_encoder_and_nothing_is_written(setup, tmp_path):
    root, folder, _, _ = setup
    with pytest.raises(AutonatError, match="is captioned .*--text-encoder"):
        tokenize(TokenizeConfig(tokenizer=str(root / "tok"), data=str(folder)), tmp_path / "out",
                 show_progress=False)
    assert not (tmp_path / "out").exists()


def test_a_caption_longer_than_the_encoder_is_refused_before_writing(setup, tmp_path):
    root, _, clip, _ = setup
    folder = tmp_path / "long"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "a.png")
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "red apple " * 20}) + "\n")
    with pytest.raises(AutonatError, match="tokens long"):
        tokenize(TokenizeConfig(tokenizer=str(root / "tok"), data=str(folder), text_encoder=str(clip)),
                 tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def text_model(setup):
    root = setup[0]
    cfg = TrainConfig(tokens=str(root / "cache"), model="tiny", batch_size=3, steps=3, warmup=1)
    return train(cfg, root / "model", show_progress=False)


def test_a_text_model_trains_on_the_captions_and_records_its_encoder(setup, text_model, tmp_path):
    root, _, clip, cache = setup
    m = load_model(text_model)
    assert m.config.condition == "text" and (m.config.text_len, m.config.text_dim) == (16, 32)
    assert m.meta["training"]["text_encoder"]["identity"] == load_text_encoder(str(clip)).identity
    # self-contained like its tokenizer: the encoder is copied into the model directory
    assert load_text_encoder(str(text_model / "text_encoder")).identity == load_text_encoder(str(clip)).identity


def test_a_text_enat_trains_and_samples_prompts(setup, tmp_path):
    root = setup[0]
    out = train(TrainConfig(tokens=str(root / "cache"), model="enat-tiny", batch_size=3, steps=2, warmup=1,
                            text_pool=4), tmp_path / "e", show_progress=False)
    m = load_model(out)
    assert m.arch == "enat" and m.config.condition == "text" and m.config.context_len == 4
    pipe = Pipeline.from_pretrained(out)
    a = pipe(prompt=["red apple", "cat face"], num_steps=4, generator=torch.Generator().manual_seed(1))
    b = pipe(prompt=["red apple", "cat face"], num_steps=4, generator=torch.Generator().manual_seed(1))
    assert len(a.images) == 2 and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.images, b.images))


def test_pipeline_samples_prompts_reproducibly_and_refuses_classes(text_model):
    pipe = Pipeline.from_pretrained(text_model)
    a = pipe(prompt=["red apple", "cat face", "red apple"], num_steps=4, generator=torch.Generator().manual_seed(3))
    assert len(a.images) == 3 and a.prompts == ["red apple", "cat face"] and a.labels == [0, 1, 0]
    b = pipe(prompt=["red apple", "cat face", "red apple"], num_steps=4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.tokens, b.tokens)                 # same prompts and seed: same images
    c = pipe(prompt=["red apple", "red apple", "red apple"], num_steps=4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(c.tokens[[0, 2]], a.tokens[[0, 2]])    # a row depends on its own prompt and noise
    with pytest.raises(AutonatError, match="conditioned on text prompts, not class labels"):
        pipe(class_labels=[0], num_steps=4)
    with pytest.raises(AutonatError, match="tokens long"):      # refused when encoded, not truncated
        pipe(prompt=["red apple " * 20], num_steps=4)
    with pytest.raises(AutonatError, match="conditioned on class labels, not text prompts"):
        Pipeline.from_pretrained("fashion-mnist")(prompt=["red apple"], num_steps=4)


def test_a_saved_text_model_carries_its_encoder(setup, text_model, tmp_path):
    pipe = Pipeline.from_pretrained(text_model)
    pipe.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "text_encoder" / "config.json").is_file()
    again = Pipeline.from_pretrained(tmp_path / "saved")
    assert again.bundle.conditioner.encoder.identity == pipe.bundle.conditioner.encoder.identity
    g = torch.Generator().manual_seed(0)
    assert torch.equal(again(prompt=["cat face"], num_steps=4, generator=g).tokens,
                       pipe(prompt=["cat face"], num_steps=4, generator=torch.Generator().manual_seed(0)).tokens)


def test_sample_cli_takes_a_prompt_or_a_prompt_file(text_model, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sample", "--model", str(text_model), "--prompt", "red apple", "--n", "2", "--steps", "4",
                 "--out", str(out)]) == 0
    assert (out / "grid.png").is_file() and np.load(out / "tokens.npz")["prompts"].tolist() == ["red apple"]
    f = tmp_path / "prompts.txt"
    f.write_text("red apple\n\ncat face\n")
    assert main(["sample", "--model", str(text_model), "--prompts", str(f), "--n", "3", "--steps", "4",
                 "--out", str(tmp_path / "s2")]) == 0
    assert np.load(tmp_path / "s2" / "tokens.npz")["labels"].tolist() == [0, 1, 0]
    assert main(["sample", "--model", str(text_model), "--classes", "1", "--out", str(tmp_path / "s3")]) == 2
    assert "conditioned on text prompts" in capsys.readouterr().err and not (tmp_path / "s3").exists()
    assert main(["sample", "--prompt", "red apple", "--out", str(tmp_path / "s4")]) == 2
    assert "not text prompts" in capsys.readouterr().err
    f.write_bytes(b"ok\n\xff\n")
    assert main(["sample", "--model", str(text_model), "--prompts", str(f), "--out", str(tmp_path / "s5")]) == 2
    assert "prompts.txt:2: not UTF-8" in capsys.readouterr().err


def test_decoding_strip_of_a_text_model_has_a_row_per_prompt(text_model, tmp_path, capsys):
    from PIL import Image
    out = tmp_path / "strip.png"
    assert main(["plot", "strip", "--model", str(text_model), "--prompts", "red apple|cat face", "--steps", "4",
                 "--out", str(out)]) == 0
    one = tmp_path / "one.png"
    assert main(["plot", "strip", "--model", str(text_model), "--prompts", "red apple", "--steps", "4",
                 "--out", str(one)]) == 0
    assert Image.open(out).size[1] > Image.open(one).size[1]          # two rows vs one
    assert main(["plot", "strip", "--model", str(text_model), "--steps", "4", "--out", str(tmp_path / "x.png")]) == 2
    assert "text-to-image model: pass --prompts" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_evaluate_a_text_model_on_held_out_captions_with_r_precision(setup, text_model, tmp_path):
    from autonat.evaluation import EvalConfig, EvaluateConfig, run_evaluation
    from autonat.text.dual_encoder import DualEncoder, DualEncoderConfig
    _, folder, _, _ = setup
    torch.manual_seed(0)
    DualEncoder(DualEncoderConfig(max_length=24, dim=16, depth=1, heads=2, embed_dim=16, channels=1,
                                  image_width=8)).save_pretrained(tmp_path / "dual")
    ev = EvalConfig(n=6, batch_size=4, reference_data=str(folder), precision_recall=False, count_flops=True,
                    alignment=str(tmp_path / "dual"))
    cfg = EvaluateConfig(model=str(text_model), steps=4, eval=ev)
    a = run_evaluation(cfg, show_progress=False)
    assert a["prompts"] == 3 and a["r_precision_distractors"] == 2 and 0.0 <= a["r_precision"] <= 1.0
    assert a["gflops_per_image"] > 0
    b = run_evaluation(cfg, show_progress=False)          # common random numbers: the same numbers
    assert (a["fid"], a["r_precision"], a["text_image_similarity"]) == \
        (b["fid"], b["r_precision"], b["text_image_similarity"])
    f = tmp_path / "p.txt"
    f.write_text("red apple\ncat face\n")
    c = run_evaluation(EvaluateConfig(model=str(text_model), steps=4, eval=EvalConfig(
        n=4, batch_size=4, reference_data=str(folder), precision_recall=False, count_flops=False,
        prompts=str(f))), show_progress=False)
    assert c["n"] == 4 and "r_precision" not in c       # no dual encoder: FID only


def test_a_changed_text_encoder_is_refused_by_training_and_loading(setup, text_model, tmp_path):
    import shutil
    root, folder, _, _ = setup
    clip = tiny_clip_dir(tmp_path / "clip")
    tokenize(TokenizeConfig(tokenizer=str(root / "tok"), data=str(folder), text_encoder=str(clip)),
             tmp_path / "cache", show_progress=False)
    shutil.rmtree(clip)
    tiny_clip_dir(clip, seed=5)                       # same place, other weights
    with pytest.raises(AutonatError, match="is not the one the caption states of .* was made with"):
        train(TrainConfig(tokens=str(tmp_path / "cache"), model="tiny", batch_size=3, steps=1),
              tmp_path / "m", show_progress=False)
    assert not (tmp_path / "m" / "model.safetensors").exists()
    moved = tmp_path / "moved"
    shutil.copytree(text_model, moved)
    shutil.rmtree(moved / "text_encoder")
    tiny_clip_dir(moved / "text_encoder", seed=5)
    with pytest.raises(AutonatError, match="is not the one the model was made with"):
        Pipeline.from_pretrained(moved)


def test_the_generation_search_runs_on_a_text_model_with_fid_plus_alignment(setup, text_model, tmp_path):
    """F = FID + w (100 - R-precision %) on held-out captions with common random numbers; the final
    report keeps both parts; w = 0 is FID alone; a re-run resumes from the store."""
    from autonat.search.generation import GenSearchConfig
    from autonat.search.loop import SearchConfig
    from autonat.search.run import run
    from autonat.search.store import TrialStore
    from autonat.text.dual_encoder import DualEncoder, DualEncoderConfig
    _, folder, _, _ = setup
    torch.manual_seed(0)
    DualEncoder(DualEncoderConfig(max_length=24, dim=16, depth=1, heads=2, embed_dim=16, channels=1,
                                  image_width=8)).save_pretrained(tmp_path / "dual")
    base = dict(only="generation", model=str(text_model), ref_data=str(folder), steps=2, n=6, n_final=6,
                batch_size=6, bf16=False, screen="none", validate_top=1, alignment=str(tmp_path / "dual"),
                gen=GenSearchConfig(pattern_evals=2, max_updates=0))
    rep = run(SearchConfig(**base, alignment_weight=0.5), tmp_path / "s", log=lambda *_: None)
    detail = rep.final["detail"]
    for tag, key in (("final-baseline", "baseline"), ("final-found", "found")):
        d = detail[tag]
        assert 0.0 <= d["r_precision"] <= 1.0
        assert d["objective"] == pytest.approx(d["fid"] + 0.5 * 100 * (1 - d["r_precision"]))
        assert rep.final[key] == d["objective"]
    store = TrialStore(tmp_path / "s" / "trials.sqlite")
    evals = store.evaluations()
    assert evals and all(e["inputs"]["alignment_weight"] == 0.5 for e in evals)
    store.close()
    again = run(SearchConfig(**base, alignment_weight=0.5), tmp_path / "s", log=lambda *_: None)
    store = TrialStore(tmp_path / "s" / "trials.sqlite")
    assert len(store.evaluations()) == len(evals) and again.final == rep.final      # resumed, not redone
    store.close()
    fid_only = run(SearchConfig(**base, alignment_weight=0.0), tmp_path / "s0", log=lambda *_: None)
    d = fid_only.final["detail"]["final-baseline"]
    assert d["objective"] == d["fid"] == pytest.approx(detail["final-baseline"]["fid"])


def test_clip_score_in_evaluate_and_as_the_search_alignment_term(setup, text_model, tmp_path):
    """Without a dual encoder, a given CLIP gives the alignment: evaluate reports clip_score
    (deterministic), the search's F = FID + w (100 - CLIP score)."""
    from autonat.evaluation import EvalConfig, EvaluateConfig, run_evaluation
    from autonat.search.generation import GenSearchConfig
    from autonat.search.loop import SearchConfig
    from autonat.search.run import run
    from text_fixtures import tiny_clip_model_dir
    _, folder, _, _ = setup
    clip = str(tiny_clip_model_dir(tmp_path / "clip"))
    cfg = EvaluateConfig(model=str(text_model), steps=4, eval=EvalConfig(
        n=6, batch_size=4, reference_data=str(folder), precision_recall=False, count_flops=False, clip=clip))
    a, b = run_evaluation(cfg, show_progress=False), run_evaluation(cfg, show_progress=False)
    assert 0.0 <= a["clip_score"] <= 100.0 and a["clip_score"] == b["clip_score"] and "r_precision" not in a
    rep = run(SearchConfig(only="generation", model=str(text_model), ref_data=str(folder), steps=2, n=6,
                           n_final=6, batch_size=6, bf16=False, screen="none", validate_top=1, clip=clip,
                           alignment_weight=0.2, gen=GenSearchConfig(pattern_evals=2, max_updates=0)),
              tmp_path / "s", log=lambda *_: None)
    d = rep.final["detail"]["final-found"]
    assert d["objective"] == pytest.approx(d["fid"] + 0.2 * (100 - d["clip_score"]))


def test_prompts_can_come_from_another_split_than_the_fid_reference(text_model, tmp_path):
    """FID against train, prompts from the held-out split (--prompt-split test)."""
    from autonat.bundle import Bundle
    from autonat.evaluation import EvalConfig, evaluate_model, load_feature_extractor
    root = tmp_path / "split"
    for split, caps in (("train", ["red apple", "cat face", "red cat"]), ("test", ["apple", "face"])):
        (root / split).mkdir(parents=True)
        for k, c in enumerate(caps):
            Image.fromarray(np.full((28, 28), 40 * k, np.uint8)).save(root / split / f"{k}.png")
        (root / split / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{k}.png", "text": c}) + "\n"
                                                             for k, c in enumerate(caps)))
    bundle = Bundle.load(str(text_model))
    cfg = EvalConfig(n=4, batch_size=4, reference_data=str(root), reference_split="train", prompt_split="test",
                     precision_recall=False, count_flops=False)
    res = evaluate_model(bundle, bundle.strategy("maskgit", 2), load_feature_extractor("fmnist"), cfg,
                         show_progress=False)
    assert sorted(set(bundle.conditioner.eval_prompts)) == ["apple", "face"] and res["reference"].endswith(":train")


def test_the_full_search_trains_text_proxies_and_searches_p_r_unchanged(setup, tmp_path):
    """Algorithm 1 (training-strategy line search + generation search) on a captioned token cache:
    every proxy is a text model, scored with F = FID + w (100 - R-precision) on held-out captions."""
    from autonat.search.generation import GenSearchConfig
    from autonat.search.loop import ProxyTraining, SearchConfig
    from autonat.search.run import run
    from autonat.search.store import TrialStore
    from autonat.search.training_strategy import BetaSearchConfig
    from autonat.text.dual_encoder import DualEncoder, DualEncoderConfig
    root, folder, _, _ = setup
    torch.manual_seed(0)
    DualEncoder(DualEncoderConfig(max_length=24, dim=16, depth=1, heads=2, embed_dim=16, channels=1,
                                  image_width=8)).save_pretrained(tmp_path / "dual")
    cfg = SearchConfig(only="all", tokens=str(root / "cache"), model="tiny", ref_data=str(folder), steps=2, n=6,
                       n_final=6, batch_size=6, bf16=False, validate_top=1, late_evals=0, max_alternations=1,
                       alignment=str(tmp_path / "dual"), alignment_weight=0.5,
                       gen=GenSearchConfig(pattern_evals=2, max_updates=0),
                       beta=BetaSearchConfig(max_trainings=2, max_rounds=1),
                       proxy=ProxyTraining(train_steps=2, train_batch_size=3))
    rep = run(cfg, tmp_path / "s", log=lambda *_: None)
    store = TrialStore(tmp_path / "s" / "trials.sqlite")
    trainings, evals = store.trainings(), store.evaluations()
    store.close()
    assert len(trainings) >= 2                                        # the initial p(r) + a Beta candidate
    assert all(load_model(t["path"]).config.condition == "text" for t in trainings)
    assert all(e["inputs"]["alignment_weight"] == 0.5 for e in evals)
    d = rep.final["detail"]["final-found"]
    assert d["objective"] == pytest.approx(d["fid"] + 0.5 * 100 * (1 - d["r_precision"]))
    assert set(rep.final["ablation"]) == {"baseline", "generation_only", "training_only", "both"}
