"""Bad input, tried as a hostile user would, at every entry point: every case must end with exit
code 2, a one-line `autonat: error: ...` (or argparse's usage error) naming the problem, no
traceback, and nothing left behind at the output path.

The numeric and choice cases are generated from the config dataclasses' own bounds (so a new
option is covered the day it is added); the file cases damage each kind of file autonat reads.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing

import numpy as np
import pytest
import torch
from PIL import Image

from autonat.cli import main
from autonat.config import _base_type, flag_name

from conftest import tiny_tokenizer, tiny_uvit

COMMON = ["--quiet", "--device", "cpu"]


class Evil:
    """Any class: a pickle that refers to it is not plain tensors (weights_only refuses it)."""


# ----------------------------------------------------------------------------------------------
# A small world of valid inputs (every case changes one thing)
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from autonat.models.registry import save_model
    from autonat.tokens import write_token_cache
    from autonat.data import load_dataset
    root = tmp_path_factory.mktemp("bad")
    imgs = root / "imgs"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (imgs / c).mkdir(parents=True)
        for i in range(12):
            Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8), mode="L").save(imgs / c / f"{i}.png")
    tok = tiny_tokenizer()
    tok.save_pretrained(root / "tok")
    write_token_cache(tok, load_dataset(str(imgs), "train"), root / "cache", tokenizer_name=str(root / "tok"),
                      show_progress=False)
    model = tiny_uvit(num_classes=2)
    save_model(model, root / "model", tokenizer={"name": str(root / "tok"), "identity": tok.identity},
               training={"class_names": ["a", "b"]})
    (root / "plain.txt").write_text("not a directory")
    (root / "strategy.json").write_text(json.dumps({"r": [0.5, 0.0], "tau1": [1, 1], "tau2": [1, 0], "s": [0, 0]}))
    return root


def run_cli(argv, capsys):
    """(exit code, stderr) of `autonat argv`; an uncaught exception fails the test (a traceback)."""
    try:
        rc = main(argv)
    except SystemExit as e:          # argparse: usage error, exit code 2
        rc = e.code
    err = capsys.readouterr().err
    return rc, err


def assert_refused(argv, capsys, out=None, match=None):
    rc, err = run_cli([str(a) for a in argv], capsys)
    assert rc == 2, f"{argv}: exit {rc}\n{err}"
    assert "Traceback" not in err and ("autonat: error:" in err or "error: argument" in err
                                       or "error: the following arguments" in err), err
    if match:
        assert match in err, err
    if out is not None:
        assert not out.exists() or out.is_file(), f"{argv} left {out} behind"


# ----------------------------------------------------------------------------------------------
# Generated: every bounded option of every config-driven command
# ----------------------------------------------------------------------------------------------

def _bad_values(field, kind):
    meta = field.metadata
    kind, _ = _base_type(kind)
    if meta.get("choices"):
        return ["bogus-choice"]
    if kind is int:
        vals = ["abc", "1.5"]
        if meta.get("min") is not None:
            vals.append(str(int(meta["min"]) - 1))
        if meta.get("max") is not None:
            vals.append(str(int(meta["max"]) + 1))
        return vals
    if kind is float:
        vals = ["abc", "nan", "inf"]
        if meta.get("min") is not None:
            vals.append(str(meta["min"] - 1.0 if meta["min"] >= 1 else -1.0))
        if meta.get("max") is not None and math.isfinite(meta["max"]):
            vals.append(str(meta["max"] * 2 + 1))
        return vals
    if typing.get_origin(kind) is tuple:
        return ["a,b", "-5,-5,-5"]
    return []


def _cases(cls, prefix=()):
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind, _ = _base_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            out += _cases(kind)
        elif f.metadata.get("cli", True):
            out += [(flag_name(f.name), v) for v in _bad_values(f, hints[f.name])]
    return out


def _commands(w):
    from autonat.evaluation import EvaluateConfig
    from autonat.generate import SampleConfig
    from autonat.metrics.featnet_train import FeatureNetTrainConfig
    from autonat.search.loop import SearchConfig
    from autonat.tokenizer.model import TokenizerConfig
    from autonat.tokenizer.train import TokenizerTrainConfig
    from autonat.tokens import TokenizeConfig
    from autonat.training import TrainConfig
    img = str(w / "imgs")
    return {
        "train": (["train", "--tokens", w / "cache", "--model", "tiny", "--steps", "2", "--batch-size", "8"],
                  [TrainConfig]),
        "sample": (["sample", "--model", w / "model", "--steps", "2", "--n", "2"], [SampleConfig]),
        "evaluate": (["evaluate", "--model", w / "model", "--steps", "2", "--n", "4", "--reference-data", img],
                     [EvaluateConfig]),
        "tokenize": (["tokenize", "--tokenizer", w / "tok", "--data", img], [TokenizeConfig]),
        "tokenizer train": (["tokenizer", "train", "--data", img, "--steps", "2", "--batch-size", "4"],
                            [TokenizerTrainConfig, TokenizerConfig]),
        "featnet train": (["featnet", "train", "--data", img, "--epochs", "1", "--batch-size", "4"],
                          [FeatureNetTrainConfig]),
        "search": (["search", "--only", "generation", "--model", w / "model", "--steps", "2", "--n", "4",
                    "--ref-data", img], [SearchConfig]),
    }


GENERATED = ["train", "sample", "evaluate", "tokenize", "tokenizer train", "featnet train", "search"]


def _with_out(command, base, out):
    return base if command == "evaluate" else base + ["--out", out]


@pytest.mark.parametrize("command", GENERATED)
def test_every_bounded_option_refuses_bad_values(world, tmp_path, capsys, command):
    from autonat.cli import build_parser
    base, classes = _commands(world)[command]
    out = tmp_path / "out"
    build_parser().parse_args([str(a) for a in _with_out(command, base, out) + COMMON])   # the base is valid
    cases = [c for cls in classes for c in _cases(cls)]
    assert len(cases) >= 5
    for flag, value in cases:
        # the message names the option (argparse: "argument --x"; autonat: "x (--x)")
        assert_refused(_with_out(command, base, out) + [flag, value] + COMMON, capsys, out, flag)
    argv = _with_out(command, base, out) + ["--quiet"]
    assert_refused(argv + ["--device", "nonsense"], capsys, out, "unknown device")
    if not torch.cuda.is_available():
        assert_refused(argv + ["--device", "cuda"], capsys, out, "CUDA")


@pytest.mark.parametrize("command", ["train", "sample", "tokenize", "tokenizer train", "featnet train", "search"])
def test_output_paths_that_cannot_be_written(world, tmp_path, capsys, command):
    base, _ = _commands(world)[command]
    plain = tmp_path / "file"
    plain.write_text("x")
    for out in (plain, plain / "under"):                 # an existing file; a path under a file
        assert_refused(base + ["--out", out] + COMMON, capsys)
        assert plain.read_text() == "x"


# ----------------------------------------------------------------------------------------------
# Damaged files, one kind at a time
# ----------------------------------------------------------------------------------------------

BAD_STRATEGIES = {
    "list.json": b"[1, 2, 3]", "empty.json": b"", "not-utf8.json": b"\xff\xfe\x00bad",
    "string-in-r.json": json.dumps({"r": ["a", 0.0], "tau1": [1, 1], "tau2": [1, 0], "s": [0, 0]}).encode(),
    "null-in-r.json": json.dumps({"r": [None, 0.0], "tau1": [1, 1], "tau2": [1, 0], "s": [0, 0]}).encode(),
    "scalar-r.json": json.dumps({"r": 0.5, "tau1": [1, 1], "tau2": [1, 0], "s": [0, 0]}).encode(),
    "steps-word.json": json.dumps({"steps": "four", "r": [0.5, 0.0], "tau1": [1, 1], "tau2": [1, 0],
                                   "s": [0, 0]}).encode(),
    "typo.json": json.dumps({"r": [0.5, 0.0], "tau1": [1, 1], "tua2": [1, 0], "tau2": [1, 0], "s": [0, 0]}).encode(),
    "increasing.json": json.dumps({"r": [0.2, 0.5, 0.0], "tau1": [1] * 3, "tau2": [1] * 3, "s": [0] * 3}).encode(),
    "huge.json": json.dumps({"r": [0.5] * 5000 + [0.0], "tau1": [1] * 5001, "tau2": [1] * 5001,
                             "s": [0] * 5001}).encode(),
    "list.yaml": b"- 1\n- 2\n", "empty.yaml": b"", "words.yaml": b"manual_ratios: [a]\nmanual_temp: []\n"
                                                            b"manual_samp_temp: [1]\nmanual_cfg: [1]\n",
}


def test_damaged_strategy_files(world, tmp_path, capsys):
    for name, data in BAD_STRATEGIES.items():
        f = tmp_path / name
        f.write_bytes(data)
        assert_refused(["sample", "--model", world / "model", "--strategy", f, "--steps", "2", "--n", "1",
                        "--out", tmp_path / "o"] + COMMON, capsys, tmp_path / "o")
    assert_refused(["sample", "--model", world / "model", "--strategy", tmp_path / "huge.json", "--steps", "5001",
                    "--n", "1", "--out", tmp_path / "o"] + COMMON, capsys, tmp_path / "o")


def _model_copy(world, tmp_path, name):
    import shutil
    d = tmp_path / name
    shutil.copytree(world / "model", d)
    return d


def test_damaged_model_directories(world, tmp_path, capsys):
    from autonat.io import atomic_save_tensors, load_tensors
    cfg = json.loads((world / "model" / "config.json").read_text())
    cases = {
        "list": [1, 2], "no-model": {k: v for k, v in cfg.items() if k != "model"},
        "wrong-type": {**cfg, "model": {**cfg["model"], "dim": "big"}},
        "absurd": {**cfg, "model": {**cfg["model"], "dim": 8192, "depth": 501}},
        "beyond-bounds": {**cfg, "model": {**cfg["model"], "dim": 10 ** 7}},
        "unknown-key": {**cfg, "colour": "blue"}, "unknown-field": {**cfg, "model": {**cfg["model"], "wings": 2}},
        "other-kind": {**cfg, "kind": "featnet"},
    }
    for name, c in cases.items():
        d = _model_copy(world, tmp_path, name)
        (d / "config.json").write_text(json.dumps(c))
        assert_refused(["sample", "--model", d, "--steps", "2", "--n", "1", "--out", tmp_path / "o"] + COMMON,
                       capsys, tmp_path / "o")
    w = load_tensors(world / "model" / "model.safetensors")
    for name, change in (("nan", lambda t: {**t, "out_norm.weight": t["out_norm.weight"] * float("nan")}),
                         ("shape", lambda t: {**t, "out_norm.weight": torch.zeros(3)}),
                         ("missing", lambda t: {k: v for k, v in t.items() if k != "out_norm.weight"})):
        d = _model_copy(world, tmp_path, name)
        atomic_save_tensors(d / "model.safetensors", change(w))
        rc, err = run_cli(["sample", "--model", str(d), "--steps", "2", "--n", "1", "--out",
                           str(tmp_path / "o")] + COMMON, capsys)
        assert rc == 2 and "out_norm.weight" in err and not (tmp_path / "o").exists(), err
    d = _model_copy(world, tmp_path, "garbage")
    (d / "model.safetensors").write_bytes(b"\x00" * 100)
    assert_refused(["sample", "--model", d, "--steps", "2", "--n", "1", "--out", tmp_path / "o"] + COMMON, capsys)


def test_damaged_token_caches(world, tmp_path, capsys):
    import shutil
    man = json.loads((world / "cache" / "manifest.json").read_text())
    tokens = np.load(world / "cache" / "tokens.npy")
    labels = np.load(world / "cache" / "labels.npy")
    cases = {
        "no-tokens": lambda d: (d / "tokens.npy").unlink(),
        "no-count": lambda d: (d / "manifest.json").write_text(json.dumps({k: v for k, v in man.items() if k != "count"})),
        "object-npy": lambda d: np.save(d / "tokens.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True),
        "ids-out-of-range": lambda d: np.save(d / "tokens.npy", np.where(tokens == tokens.max(), 999, tokens)),
        "labels-out-of-range": lambda d: np.save(d / "labels.npy", labels + 5),
        "shape": lambda d: np.save(d / "tokens.npy", tokens[:3]),
        "manifest-list": lambda d: (d / "manifest.json").write_text("[]"),
    }
    for name, damage in cases.items():
        d = tmp_path / name
        shutil.copytree(world / "cache", d)
        damage(d)
        out = tmp_path / f"run-{name}"
        assert_refused(["train", "--tokens", d, "--model", "tiny", "--steps", "2", "--batch-size", "8", "--out", out]
                       + COMMON, capsys, out)
        assert not out.exists()


def _idx(path, arr, ndim):
    import gzip
    import struct
    header = struct.pack(">HBB", 0, 8, ndim) + struct.pack(">" + "I" * ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def _png_bomb(path, side=30000):
    """A PNG whose header claims side x side pixels (PIL refuses it as a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b""))


def test_damaged_datasets(world, tmp_path, capsys):
    import shutil
    rng = np.random.default_rng(1)
    cases = {}
    d = tmp_path / "idx-gap"                        # labels 0 and 2: class 1 never appears
    d.mkdir()
    _idx(d / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (8, 28, 28)), 3)
    _idx(d / "train-labels-idx1-ubyte.gz", np.array([0, 2] * 4), 1)
    cases["idx-gap"] = d
    d = tmp_path / "idx-empty"
    d.mkdir()
    _idx(d / "train-images-idx3-ubyte.gz", np.zeros((0, 28, 28)), 3)
    _idx(d / "train-labels-idx1-ubyte.gz", np.zeros((0,)), 1)
    cases["idx-empty"] = d
    d = tmp_path / "empty-class"
    shutil.copytree(world / "imgs", d)
    (d / "c").mkdir()
    cases["empty-class"] = d
    d = tmp_path / "bomb"
    shutil.copytree(world / "imgs", d)
    _png_bomb(d / "a" / "bomb.png")
    cases["bomb"] = d
    for name, data in cases.items():
        for argv in (["tokenize", "--tokenizer", world / "tok", "--data", data],
                     ["tokenizer", "train", "--data", data, "--steps", "1", "--batch-size", "4"],
                     ["featnet", "train", "--data", data, "--epochs", "1", "--batch-size", "4"]):
            out = tmp_path / f"out-{name}"
            assert_refused(argv + ["--out", out] + COMMON, capsys, out)
            assert not out.exists()
    # --skip-bad skips the bomb (and says so), in every command that reads images
    out = tmp_path / "skipped"
    rc, err = run_cli([str(a) for a in ["tokenize", "--tokenizer", world / "tok", "--data", cases["bomb"],
                                        "--skip-bad", "--out", out] + COMMON], capsys)
    assert rc == 0 and "skipped 1 unreadable file" in err
    rc, err = run_cli([str(a) for a in ["tokenizer", "train", "--data", cases["bomb"], "--skip-bad", "--steps", "1",
                                        "--batch-size", "4", "--base-channels", "4", "--out", tmp_path / "tk"] + COMMON],
                      capsys)
    assert rc == 0 and "skipped 1 unreadable file" in err


def test_damaged_plots_stores_and_checkpoints(world, tmp_path, capsys):
    (tmp_path / "lacking.jsonl").write_text(json.dumps({"fid": 3.0}) + "\n")
    (tmp_path / "garbage.jsonl").write_text("{not json\n")
    for f in ("missing.jsonl", "lacking.jsonl", "garbage.jsonl"):
        assert_refused(["plot", "frontier", tmp_path / f, "--out", tmp_path / "f.png"], capsys, tmp_path / "f.png")
    for content in (b"this is not sqlite" * 100, b""):
        (tmp_path / "s").mkdir(exist_ok=True)
        (tmp_path / "s" / "trials.sqlite").write_bytes(content)
        assert_refused(["plot", "search", tmp_path / "s", "--out", tmp_path / "c.png"], capsys, tmp_path / "c.png")
    # a checkpoint whose state.pt holds a pickled object: refused by weights_only, named clearly
    run = tmp_path / "run"
    assert main([str(a) for a in ["train", "--tokens", world / "cache", "--model", "tiny", "--steps", "2",
                                  "--batch-size", "8", "--no-bf16", "--out", run] + COMMON]) == 0
    from autonat.checkpoint import find_latest
    torch.save({"optimizer": Evil()}, find_latest(run) / "state.pt")
    rc, err = run_cli([str(a) for a in ["train", "--tokens", world / "cache", "--model", "tiny", "--steps", "2",
                                        "--batch-size", "8", "--no-bf16", "--out", run, "--resume"] + COMMON], capsys)
    assert rc == 2 and "weights_only" in err, err


def test_other_entry_points(world, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    cases = [
        ["export", "--model", world / "model", "--out", world / "plain.txt"],
        ["export", "--model", tmp_path / "nope", "--out", tmp_path / "e"],
        ["convert", "--checkpoint", tmp_path / "file", "--vqgan", tmp_path / "file", "--out", tmp_path / "c"],
        ["convert", "--out", tmp_path / "c"],
        ["convert", "--checkpoint", tmp_path / "file", "--enc-dec", "a,b", "--vqgan", tmp_path / "file",
         "--out", tmp_path / "c"],
        ["stats", "--out", tmp_path / "file" / "s.npz", "--data", world / "imgs"],
        ["stats", "--out", tmp_path / "s.npz", "--features", "inception", "--data", world / "imgs"],
        ["strategy", "maskgit", "--steps", "4", "--to-yaml", tmp_path],
        ["strategy", "maskgit", "--steps", "0"],
        ["strategy", "maskgit:1,2,3", "--steps", "4"],
        ["strategy", "halton:-1", "--steps", "4"],
        ["bench", "sampling", "--model", world / "model", "--batch", "0"],
        ["bench", "peak", "--dim", "0"],
        ["plot", "strategy", "nonsense", "--out", tmp_path / "p.png"],
        ["plot", "strip", "--model", world / "model", "--steps", "0", "--out", tmp_path / "p.png"],
        ["demo", "--port", "0"],
        ["evaluate", "--model", world / "model", "--steps", "2", "--n", "4", "--reference-stats", tmp_path / "file"],
    ]
    for argv in cases:
        assert_refused(argv + ["--quiet"], capsys)
    assert not (tmp_path / "c").exists() and not (tmp_path / "e").exists()


# ----------------------------------------------------------------------------------------------
# The second probe's classes (each case is one example of a class)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,match", [
    (["sample", "--seed", str(2 ** 64)], "--seed"),                                   # extreme numbers
    (["sample", "--seed", str(2 ** 63)], "--seed"),
    (["sample", "--guidance", "1e300"], "--guidance"),
    (["evaluate", "--n", "1000000000"], "--n"),
    (["sample", "--strategy", "maskgit:1,1e300"], "guidance scales"),
    (["sample", "--classes", "²"], "unknown class"),                                  # text that looks like a number
    (["sample", "--classes", "٣"], "unknown class"),
    (["sample", "--classes", "1,²"], "unknown class"),
    (["sample", "--strategy", "maskgit:1,2,3,4"], "maskgit[:LAMBDA,K]"),              # messages that say what to write
])
def test_extreme_numbers_and_lookalike_digits(world, tmp_path, capsys, argv, match):
    out = tmp_path / "out"
    assert_refused(argv + ["--model", world / "model", "--out", out] + COMMON if argv[0] == "sample"
                   else argv + ["--model", world / "model"] + COMMON, capsys, out=out, match=match)


def test_lookalike_digits_through_the_api(world):
    from autonat.bundle import Bundle
    from autonat.io import AutonatError
    b = Bundle.load(world / "model")
    for bad in (["²"], ["1", "²"], "³"):
        with pytest.raises(AutonatError, match="unknown class"):
            b.conditioner.parse(bad)


def test_tiny_temperatures_in_a_strategy_file_are_refused(world, tmp_path, capsys):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"r": [0.5, 0.0], "tau1": [1e-300, 1], "tau2": [1, 0], "s": [0, 0]}))
    assert_refused(["sample", "--model", world / "model", "--strategy", f, "--steps", "2", "--out", tmp_path / "o"]
                   + COMMON, capsys, out=tmp_path / "o", match="argmax")


def test_nothing_is_written_before_the_input_is_checked(world, tmp_path, capsys):
    out = tmp_path / "search"
    out.mkdir()
    (out / "trials.sqlite").write_bytes(b"this is not sqlite")
    assert_refused(["search", "--only", "generation", "--model", world / "model", "--out", out] + COMMON, capsys,
                   match="trial store")
    assert sorted(p.name for p in out.iterdir()) == ["trials.sqlite"]            # no search_config.json
    assert_refused(["reference", "build", "--only", "bogus", "--work", tmp_path / "work"], capsys,
                   out=tmp_path / "work", match="bogus")
    assert not (tmp_path / "work").exists()
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    assert_refused(["export", "--model", world / "model", "--out", link], capsys, match="symbolic link to a missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "search"]      # no hidden .tmp left


def test_an_atomic_directory_cleans_up_after_itself(tmp_path):
    from autonat.io import AtomicDir, AutonatError
    link = tmp_path / "a" / "link"
    with pytest.raises(RuntimeError):
        with AtomicDir(tmp_path / "new" / "sub" / "out") as tmp:
            (tmp / "f").write_text("x")
            raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()                    # parents it made are gone too
    link.parent.mkdir()
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(AutonatError, match="symbolic link"):
        with AtomicDir(link):
            pass
    assert sorted(p.name for p in link.parent.iterdir()) == ["link"]


def test_weights_of_the_wrong_kind_are_refused_at_load(world, tmp_path, capsys):
    import shutil

    from safetensors.torch import load_file, save_file
    bad = tmp_path / "model"
    shutil.copytree(world / "model", bad)
    w = load_file(bad / "model.safetensors")
    k = next(k for k, v in w.items() if v.is_floating_point() and v.ndim == 2)
    save_file({**w, k: (w[k] * 100).to(torch.int32)}, bad / "model.safetensors")
    assert_refused(["sample", "--model", bad, "--out", tmp_path / "o"] + COMMON, capsys, out=tmp_path / "o",
                   match=f"{k} is stored as torch.int32")


def test_image_inputs_that_cannot_work(world, tmp_path, capsys):
    one = tmp_path / "one"
    (one / "a").mkdir(parents=True)
    for i in range(4):
        Image.new("L", (1, 1), i * 40).save(one / "a" / f"{i}.png")
    assert_refused(["tokenizer", "train", "--data", one, "--out", tmp_path / "t", "--steps", "2"] + COMMON, capsys,
                   out=tmp_path / "t", match="--resolution")
    rc, err = run_cli(["tokenizer", "train", "--data", str(one), "--out", str(tmp_path / "t2")] + COMMON, capsys)
    assert "--image-size" not in err
    same = tmp_path / "same"
    for c in ("a", "b"):
        (same / c).mkdir(parents=True)
        for i in range(40):
            Image.new("L", (8, 8), 7).save(same / c / f"{i}.png")
    assert_refused(["featnet", "train", "--data", same, "--out", tmp_path / "f", "--batch-size", "8"] + COMMON,
                   capsys, out=tmp_path / "f", match="identical")
    assert not (tmp_path / "f").exists()


def test_refusals_that_used_to_never_come(world, tmp_path, capsys):
    assert_refused(["demo", "--model", tmp_path / "missing"], capsys, match="--model")
    assert_refused(["search", "--only", "generation", "--model", world / "model", "--init-strategy", "halton",
                    "--knobs", "tau2", "--out", tmp_path / "s"] + COMMON, capsys, out=tmp_path / "s", match="tau2")
    assert not (tmp_path / "s").exists()
    y = tmp_path / "official.yaml"
    assert main(["convert", "--strategy", str(world / "strategy.json"), "--out", str(y)]) == 0
    assert main(["strategy", str(y)]) == 0                    # YAML out is YAML that autonat reads back


def test_strategy_messages_from_yaml_name_the_file_and_the_key(tmp_path, capsys):
    y = tmp_path / "s.yaml"
    y.write_text("manual_ratios: [0.5, 0.9]\nmanual_temp: [1, 1]\nmanual_samp_temp: [1, 1, 1]\nmanual_cfg: [0, 1, 2]\n")
    assert_refused(["strategy", y], capsys, match=f"{y}: manual_ratios must be non-increasing")
    y.write_text("manual_ratios: [0.9, 0.5]\nmanual_temp: [1, 1]\nmanual_samp_temp: [1, 1, 1]\nmanual_cfg: [0, x, 2]\n")
    assert_refused(["strategy", y], capsys, match=f"{y}: manual_cfg[1] must be a number, got 'x'")
