"""The user's whole CLI workflow on a tiny image folder, end to end: tokenizer -> token cache ->
NAT training -> sampling -> evaluation -> generation-strategy search (re-run from its trial store) ->
sampling with the found strategy -> every plot. Tiny configs; checks artefacts, not quality."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from autonat.cli import main

pytestmark = pytest.mark.slow   # the whole CLI workflow, end to end

COMMON = ["--quiet", "--device", "cpu"]


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return data


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes of 28x28 grey images with some structure (bars at class-dependent places)."""
    from PIL import Image
    root = tmp_path_factory.mktemp("wf") / "imgs"
    rng = np.random.default_rng(0)
    for c, name in enumerate(("bars", "blocks")):
        (root / name).mkdir(parents=True)
        for i in range(24):
            a = (rng.random((28, 28)) * 40).astype(np.uint8)
            lo = 4 + (i % 6) * 2
            if c == 0:
                a[:, lo:lo + 5] = 220
            else:
                a[lo:lo + 9, lo:lo + 9] = 200
            Image.fromarray(a, mode="L").save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(folder):
    work = folder.parent
    assert main(["tokenizer", "train", "--data", str(folder), "--channels", "1", "--out", str(work / "tok"),
                 "--steps", "4", "--batch-size", "8", "--base-channels", "8", "--codebook-size", "32",
                 "--eval-every", "4", "--no-bf16", *COMMON]) == 0
    assert main(["tokenize", "--tokenizer", str(work / "tok"), "--data", str(folder), "--channels", "1",
                 "--out", str(work / "cache"), "--quiet"]) == 0
    assert main(["train", "--tokens", str(work / "cache"), "--model", "tiny", "--steps", "6", "--batch-size", "8",
                 "--warmup", "2", "--out", str(work / "nat"), "--no-bf16", *COMMON]) == 0
    return work


def test_train_writes_a_loadable_model_with_its_configs(trained):
    nat = trained / "nat"
    cfg = json.loads((nat / "config.json").read_text())
    assert cfg["arch"] == "uvit" and cfg["model"]["codebook_size"] == 32 and cfg["model"]["num_classes"] == 2
    assert (nat / "model.safetensors").is_file() and (nat / "train_config.json").is_file()
    lines = [json.loads(x) for x in (nat / "log.jsonl").read_text().splitlines() if x.strip()]
    assert lines and all(np.isfinite(x["loss"]) for x in lines if "loss" in x)


def test_sample_with_trace(trained):
    out = trained / "samples"
    assert main(["sample", "--model", str(trained / "nat"), "--tokenizer", str(trained / "tok"), "--steps", "4",
                 "--n", "6", "--classes", "bars,blocks", "--out", str(out), "--trace", *COMMON]) == 0
    _png(out / "grid.png")
    assert len(list(out.glob("0*.png"))) == 6
    with np.load(out / "tokens.npz") as z:
        assert z["tokens"].shape == (6, 7, 7) and z["tokens"].max() < 32 and list(z["labels"]) == [0, 1] * 3
    trace = json.loads((out / "trace.json").read_text())
    assert trace["masked_counts"][0] == 49 and trace["masked_counts"][-1] == 0
    assert len(trace["steps"]) == 4


def test_evaluate_json_against_own_reference(trained, folder, capsys):
    assert main(["evaluate", "--model", str(trained / "nat"), "--tokenizer", str(trained / "tok"), "--steps", "4",
                 "--n", "16", "--ref-data", str(folder), "--no-pr", "--json", *COMMON]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["n"] == 16 and res["steps"] == 4 and np.isfinite(res["fid"]) and res["fid"] > 0
    assert res["flops_per_image"] > 0 and res["images_per_second"] > 0
    (trained / "evals.jsonl").write_text(json.dumps(res) + "\n")


def test_search_resumes_then_samples_with_the_found_strategy(trained, folder, capsys):
    out = trained / "search"
    argv = ["search", "--only", "generation", "--model", str(trained / "nat"), "--tokenizer", str(trained / "tok"),
            "--steps", "3", "--method", "spsa", "--n", "16", "--n-final", "16", "--max-updates", "2",
            "--ref-data", str(folder), "--out", str(out), *COMMON]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["evaluations"] >= 3 and summary["final"]["n"] == 16
    best = json.loads((out / "best_strategy.json").read_text())
    assert best["steps"] == 3 and best["r"][-1] == 0.0
    assert (out / "report.md").is_file()
    with sqlite3.connect(out / "trials.sqlite") as db:
        n_before = db.execute("select count(*) from evaluations").fetchone()[0]
    assert main(argv) == 0                         # same command again: everything is cached
    with sqlite3.connect(out / "trials.sqlite") as db:
        assert db.execute("select count(*) from evaluations").fetchone()[0] == n_before
    assert main(["sample", "--model", str(trained / "nat"), "--tokenizer", str(trained / "tok"),
                 "--strategy", str(out / "best_strategy.json"), "--steps", "3", "--n", "2",
                 "--out", str(trained / "found"), *COMMON]) == 0
    _png(trained / "found" / "grid.png")
    # a step count the file was not searched for is a clear error, not a silent interpolation
    assert main(["sample", "--model", str(trained / "nat"), "--tokenizer", str(trained / "tok"),
                 "--strategy", str(out / "best_strategy.json"), "--steps", "5", "--n", "2",
                 "--out", str(trained / "bad"), *COMMON]) == 2
    assert not (trained / "bad").exists()


def test_every_plot(trained):
    plots = trained / "plots"
    assert main(["plot", "strategy", "maskgit", str(trained / "search" / "best_strategy.json"), "--steps", "3",
                 "--out", str(plots / "schedules.png")]) == 0
    assert main(["plot", "search", str(trained / "search"), "--max-evals", "3",
                 "--out", str(plots / "search.png")]) == 0
    assert main(["plot", "frontier", str(trained / "evals.jsonl"), "--out", str(plots / "frontier.png")]) == 0
    assert main(["plot", "strip", "--model", str(trained / "nat"), "--tokenizer", str(trained / "tok"),
                 "--steps", "3", "--classes", "0,1", "--out", str(plots / "strip.png")]) == 0
    for f in ("schedules", "search", "frontier", "strip"):
        _png(plots / f"{f}.png")


def test_full_alternating_search_reports_table_6a_and_resumes(trained, folder, capsys):
    """Algorithm 1 through the CLI: train candidates under p(r), search both strategies, report the
    2x2 ablation on fresh seeds; the same command again trains and evaluates nothing."""
    out = trained / "alt"
    argv = ["search", "--tokens", str(trained / "cache"), "--model", "tiny", "--tokenizer", str(trained / "tok"),
            "--steps", "3", "--n", "16", "--n-final", "16", "--max-updates", "1", "--max-trainings", "2",
            "--max-alternations", "1", "--train-steps", "3", "--train-batch-size", "8",
            "--ref-data", str(folder), "--out", str(out), "--no-bf16", *COMMON]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    abl = summary["final"]["ablation"]
    assert set(abl) == {"baseline", "generation_only", "training_only", "both"}
    assert all(np.isfinite(v) for v in abl.values())
    assert abl["baseline"] == summary["final"]["baseline"] and abl["both"] == summary["final"]["found"]
    best = json.loads((out / "best_strategy.json").read_text())
    assert (best["mask_dist"] == "arccos" or best["mask_dist"].startswith("beta:")) and best["steps"] == 3
    assert "Table 6a" in (out / "report.md").read_text()
    with sqlite3.connect(out / "trials.sqlite") as db:
        counts = [db.execute(f"select count(*) from {t}").fetchone()[0] for t in ("evaluations", "trainings")]
    assert counts[1] >= 2                          # the arccos baseline + at least one Beta candidate
    assert main(argv) == 0
    with sqlite3.connect(out / "trials.sqlite") as db:
        assert [db.execute(f"select count(*) from {t}").fetchone()[0]
                for t in ("evaluations", "trainings")] == counts
    # the report lists this run's alternations once (0 = initial, 1), not the earlier run's again
    section = (out / "report.md").read_text().split("## Alternations")[1].split("\n\n")[1]
    assert [row.split("|")[1].strip() for row in section.splitlines()[2:]] == ["0", "1"]
