"""CLI smoke tests: every command has --help; bad input exits non-zero with a clear message."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autonat.cli import build_parser, main


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    out = []
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"]
        if nested:
            out += [[name, n] for n in nested[0].choices]
        out.append([name])
    return out


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: " ".join(a))
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--help"])
    assert e.value.code == 0
    assert "usage: autonat" in capsys.readouterr().out


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "autonat", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("autonat ")


def test_bad_input_clear_error_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "autonat", "tokenize", "--data", str(tmp_path / "nope"),
                        "--out", str(tmp_path / "c")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "autonat: error:" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "c").exists()


def test_bad_strategy_file_through_the_cli(tmp_path, capsys):
    """A strategy file that breaks a rule: `autonat strategy FILE` exits 2 naming the file and
    the rule, with no traceback."""
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"r": [0.5, 0.7, 0.0], "tau1": [1, 1, 1], "tau2": [1, 1, 1], "s": [0, 0, 0]}))
    assert main(["strategy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"autonat: error: {bad}: ") and "non-increasing" in err and "Traceback" not in err


def test_tokenizer_train_eval_and_tokenize_on_a_folder(tmp_path):
    from PIL import Image
    root = tmp_path / "imgs"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            Image.new("L", (16, 16), 30 * i + (100 if c == "b" else 0)).save(root / c / f"{i}.png")
    out = tmp_path / "tok"
    rc = main(["tokenizer", "train", "--data", str(root), "--channels", "1", "--out", str(out), "--steps", "3",
               "--batch-size", "4", "--base-channels", "8", "--codebook-size", "16", "--eval-every", "3",
               "--ckpt-every", "2", "--no-bf16", "--quiet", "--device", "cpu"])
    assert rc == 0
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    rc = main(["tokenize", "--tokenizer", str(out), "--data", str(root), "--channels", "1",
               "--out", str(tmp_path / "cache"), "--hflip", "--quiet"])
    assert rc == 0
    man = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert man["count"] == 16 and man["views"] == 2 and man["grid"] == [4, 4] and man["class_names"] == ["a", "b"]
    # resume an already finished run: refused without --resume, accepted with it (same options)
    again = ["tokenizer", "train", "--data", str(root), "--channels", "1", "--out", str(out), "--steps", "3",
             "--batch-size", "4", "--base-channels", "8", "--codebook-size", "16", "--eval-every", "3",
             "--ckpt-every", "2", "--no-bf16", "--quiet", "--device", "cpu"]
    before = (out / "model.safetensors").read_bytes()
    assert main(again) == 2
    assert main(again + ["--resume"]) == 0
    assert (out / "model.safetensors").read_bytes() == before      # nothing retrained
