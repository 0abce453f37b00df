"""The README's own-data workflow, end to end, as a new user runs it: an RGB image folder that is
not Fashion-MNIST (with one unreadable file), relative paths from one working directory, the
trained model moved elsewhere and used from another: tokenizer -> token cache -> NAT -> feature
network -> evaluation -> generation-strategy search (re-run from its trial store) -> sampling
with the found strategy (checked through the trace) -> export -> plots; and Algorithm 1 on the
same cache. Tiny configs: this checks behaviour and artefacts, not image quality."""
from __future__ import annotations

import json
import shutil
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


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """An RGB 16x16 folder of two classes (red bars, blue blocks) and one broken file."""
    from PIL import Image
    root = tmp_path_factory.mktemp("wf")
    imgs = root / "shapes"
    rng = np.random.default_rng(0)
    for c, name in enumerate(("bars", "blocks")):
        (imgs / name).mkdir(parents=True)
        for i in range(24):
            a = (rng.random((16, 16, 3)) * 40).astype(np.uint8)
            lo = 2 + (i % 6)
            if c == 0:
                a[:, lo:lo + 3, 0] = 220
            else:
                a[lo:lo + 6, lo:lo + 6, 2] = 200
            Image.fromarray(a, mode="RGB").save(imgs / name / f"{i}.png")
    (imgs / "bars" / "broken.png").write_bytes(b"this is not a png")
    return root


@pytest.fixture(scope="module")
def trained(work):
    """The README's own-data commands with relative paths, run from `work/a`."""
    import os
    a = work / "a"
    a.mkdir()
    old = os.getcwd()
    os.chdir(a)
    try:
        data = "../shapes"
        assert main(["tokenizer", "train", "--data", data, "--out", "runs/tok"] + COMMON) == 2   # broken file
        assert main(["tokenizer", "train", "--data", data, "--skip-bad", "--out", "runs/tok", "--steps", "4",
                     "--batch-size", "8", "--base-channels", "8", "--codebook-size", "32", "--eval-every", "4",
                     "--no-bf16"] + COMMON) == 0
        # resolution and channels come from the tokenizer (16 px RGB); no --resolution / --channels
        assert main(["tokenize", "--tokenizer", "runs/tok", "--data", data, "--skip-bad", "--out", "runs/tokens"]
                    + COMMON) == 0
        assert main(["train", "--tokens", "runs/tokens", "--model", "tiny", "--steps", "6", "--batch-size", "8",
                     "--warmup", "0", "--out", "runs/nat", "--no-bf16"] + COMMON) == 0
        assert main(["featnet", "train", "--data", data, "--skip-bad", "--epochs", "1", "--batch-size", "8",
                     "--out", "runs/featnet", "--no-bf16"] + COMMON) == 0
    finally:
        os.chdir(old)
    moved = work / "elsewhere" / "my-model"
    moved.parent.mkdir()
    shutil.move(str(a / "runs" / "nat"), moved)         # a copied / shared / moved run
    shutil.rmtree(a / "runs" / "tok")                     # the tokenizer travels inside the model
    return {"model": moved, "featnet": a / "runs" / "featnet", "tokens": a / "runs" / "tokens",
            "data": work / "shapes", "b": work}


@pytest.fixture
def in_b(trained, monkeypatch):
    monkeypatch.chdir(trained["b"])
    return trained


def _search_argv(t: dict) -> list[str]:
    return ["search", "--only", "generation", "--model", str(t["model"]), "--featnet", str(t["featnet"]),
            "--steps", "3", "--method", "spsa", "--n", "16", "--n-final", "16", "--max-updates", "2",
            "--ref-data", str(t["data"]), "--skip-bad", "--out", str(t["b"] / "search")] + COMMON


@pytest.fixture(scope="module")
def searched(trained):
    """The generation search of the moved model, run once (it installs strategies/T3.json);
    returns its printed summary."""
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(_search_argv(trained)) == 0
    return json.loads(buf.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def evals(trained):
    """An `evaluate --json` result file (what `plot frontier` reads)."""
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["evaluate", "--model", str(trained["model"]), "--steps", "3", "--n", "16", "--featnet",
                     str(trained["featnet"]), "--no-pr", "--json", "--reference-data", str(trained["data"]),
                     "--skip-bad"] + COMMON) == 0
    path = trained["b"] / "evals.jsonl"
    path.write_text(buf.getvalue().strip().splitlines()[-1] + "\n")
    return path


def test_the_moved_model_is_self_contained(in_b):
    cfg = json.loads((in_b["model"] / "config.json").read_text())
    assert cfg["arch"] == "uvit" and cfg["model"]["num_classes"] == 2 and cfg["tokenizer"]["name"] == "tokenizer"
    assert (in_b["model"] / "tokenizer" / "config.json").is_file()
    out = in_b["b"] / "samples"
    assert main(["sample", "--model", str(in_b["model"]), "--steps", "3", "--n", "6", "--classes", "bars,blocks",
                 "--out", str(out), "--trace"] + COMMON) == 0
    _png(out / "grid.png")
    _png(out / "strip.png")
    with np.load(out / "tokens.npz") as z:
        assert z["tokens"].shape == (6, 4, 4) and list(z["labels"]) == [0, 1] * 3


def test_autonat_strategy_before_any_search_is_a_clear_error(in_b, tmp_path, capsys):
    unsearched = tmp_path / "unsearched"
    shutil.copytree(in_b["model"], unsearched)
    shutil.rmtree(unsearched / "strategies", ignore_errors=True)     # whatever ran before: never searched
    out = in_b["b"] / "none"
    assert main(["sample", "--model", str(unsearched), "--strategy", "autonat", "--steps", "3", "--n", "2",
                 "--out", str(out)] + COMMON) == 2
    err = capsys.readouterr().err
    assert "autonat search" in err and not out.exists()


def test_evaluation_names_its_feature_network(in_b, capsys):
    ref = ["--reference-data", str(in_b["data"]), "--skip-bad"]
    assert main(["evaluate", "--model", str(in_b["model"]), "--steps", "3", "--n", "16", "--featnet",
                 str(in_b["featnet"]), "--no-pr", "--json"] + ref + COMMON) == 0
    res = _last_json(capsys)
    assert res["metric"] == "shapes" and "fid_shapes" in res and res["featnet"] and np.isfinite(res["fid"])
    assert main(["evaluate", "--model", str(in_b["model"]), "--steps", "3", "--n", "16", "--no-pr", "--json"]
                + ref + COMMON) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out.strip().splitlines()[-1])["metric"] == "fmnist"
    assert "Fashion-MNIST feature network" in cap.err             # a loud warning, not silence


def test_search_installs_into_the_model_and_autonat_uses_exactly_it(in_b, searched, capsys):
    out = in_b["b"] / "search"
    argv = _search_argv(in_b)
    summary = searched
    installed = in_b["model"] / "strategies" / "T3.json"
    assert summary["installed"] == str(installed) and summary["metric"] == "shapes"
    best = json.loads((out / "best_strategy.json").read_text())
    with sqlite3.connect(out / "trials.sqlite") as db:
        n_before = db.execute("select count(*) from evaluations").fetchone()[0]
    assert main(argv) == 0                                         # same command: all cached
    with sqlite3.connect(out / "trials.sqlite") as db:
        assert db.execute("select count(*) from evaluations").fetchone()[0] == n_before
    assert main(argv[:-len(COMMON)] + ["--n", "12"] + COMMON) == 2  # other settings, same --out: refused
    s = in_b["b"] / "found"
    assert main(["sample", "--model", str(in_b["model"]), "--strategy", "autonat", "--steps", "3", "--n", "2",
                 "--out", str(s), "--trace"] + COMMON) == 0
    trace = json.loads((s / "trace.json").read_text())
    assert trace["strategy_source"] == str(installed)
    assert all(trace["strategy"][k] == best[k] for k in ("r", "tau1", "tau2", "s"))
    assert main(["sample", "--model", str(in_b["model"]), "--strategy", "autonat", "--steps", "4", "--n", "2",
                 "--out", str(in_b["b"] / "bad")] + COMMON) == 2   # not searched for T=4
    # exported: self-contained, strategies included, usable from anywhere
    exported = in_b["b"] / "exported"
    assert main(["export", "--model", str(in_b["model"]), "--out", str(exported)]) == 0
    assert main(["sample", "--model", str(exported), "--strategy", "autonat", "--steps", "3", "--n", "2",
                 "--out", str(in_b["b"] / "from-export")] + COMMON) == 0


def test_every_plot(in_b, searched, evals):
    plots = in_b["b"] / "plots"
    search = in_b["b"] / "search"
    assert main(["plot", "strategy", "maskgit", "halton", str(search / "best_strategy.json"), "--steps", "3",
                 "--out", str(plots / "schedules.png")]) == 0
    assert main(["plot", "search", str(search), "--max-evals", "3", "--out", str(plots / "search.png")]) == 0
    assert main(["plot", "frontier", str(evals), "--out", str(plots / "frontier.png")]) == 0
    assert main(["plot", "strip", "--model", str(in_b["model"]), "--steps", "3", "--classes", "0,1",
                 "--out", str(plots / "strip.png")]) == 0
    for f in ("schedules", "search", "frontier", "strip"):
        _png(plots / f"{f}.png")


def test_full_alternating_search_reports_table_6a_and_resumes(in_b, capsys):
    """Algorithm 1 through the CLI: train candidates under p(r), search both strategies, report the
    2x2 ablation on fresh seeds; the same command again trains and evaluates nothing."""
    out = in_b["b"] / "alt"
    argv = ["search", "--tokens", str(in_b["tokens"]), "--model", "tiny", "--featnet", str(in_b["featnet"]),
            "--steps", "3", "--n", "16", "--n-final", "16", "--max-updates", "1", "--max-trainings", "2",
            "--max-alternations", "1", "--train-steps", "3", "--train-batch-size", "8",
            "--ref-data", str(in_b["data"]), "--skip-bad", "--out", str(out), "--no-bf16"] + COMMON
    assert main(argv) == 0
    summary = _last_json(capsys)
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
    section = (out / "report.md").read_text().split("## Alternations")[1].split("\n\n")[1]
    assert [row.split("|")[1].strip() for row in section.splitlines()[2:]] == ["0", "1"]
