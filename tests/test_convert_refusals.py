"""`autonat convert` refuses every malformed checkpoint of every released layout at the door: a
missing key, a transposed or shortened tensor, a float tensor stored as integers, a NaN, an
unexpected key - each named with the file and the checkpoint key (and expected vs found shape),
as an AutonatError (CLI: exit 2, no traceback) and with no output directory left behind.

The malformations are generated from the key lists of the layouts' golden fixtures (the authors'
exact key names at tiny sizes, tests/fixtures/official)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from autonat.convert import convert
from autonat.io import AutonatError

FIX = Path(__file__).parent / "fixtures" / "official"
LAYOUTS = {   # name -> convert() keyword arguments (the VQGAN is converted on its own)
    "uvit": dict(heads=2, image_size=64, groups=2),
    "enat": dict(heads=2, enc_dec=(2, 2), image_size=64, groups=2),
    "vqgan": dict(image_size=64, groups=2),
}


def _state(name: str) -> dict[str, torch.Tensor]:
    return load_file(FIX / name / "weights.safetensors")


def _pick(keys: list[str], every: int) -> list[str]:
    """A spread of keys: the first, the last and every `every`-th."""
    return sorted(set(keys[::every]) | {keys[0], keys[-1]})


def _malformed(name: str) -> list[tuple[str, str, dict]]:
    """(label, key that must be named, broken state) for one layout."""
    state = _state(name)
    keys = sorted(state)
    used = [k for k in keys if not k.startswith("prev_embedder.")]       # ENAT's unused keys are dropped anyway
    out = []
    for k in _pick(used, 7):
        out.append((f"missing {k}", k, {a: b for a, b in state.items() if a != k}))
    two_d = [k for k in used if state[k].ndim == 2 and state[k].shape[0] != state[k].shape[1]]
    for k in _pick(two_d, 5):
        out.append((f"transposed {k}", k, {**state, k: state[k].t().contiguous()}))
    one_d = [k for k in used if state[k].ndim == 1 and state[k].numel() > 8]
    for k in _pick(one_d, 6):
        out.append((f"short {k}", k, {**state, k: state[k][:-8].clone()}))
    k = next(k for k in used if state[k].is_floating_point() and state[k].ndim >= 2)
    out.append((f"int32 {k}", k, {**state, k: state[k].round().to(torch.int32)}))
    bad = state[k].clone()
    bad.view(-1)[0] = float("nan")
    out.append((f"nan {k}", k, {**state, k: bad}))
    out.append(("unexpected key", "extra.weight", {**state, "extra.weight": torch.zeros(3)}))
    return out


def _convert(name: str, state: dict, tmp: Path) -> Path:
    kw = LAYOUTS[name]
    vq = tmp / "vqgan.pth"
    if name == "vqgan":
        torch.save(state, vq)
        return convert(None, tmp / "new" / "sub" / "out", vqgan=vq, **kw)
    torch.save(_state("vqgan"), vq)
    torch.save(state, tmp / "ckpt.pth")
    return convert(tmp / "ckpt.pth", tmp / "new" / "sub" / "out", vqgan=vq, **kw)


CASES = [(name, label, key, state) for name in LAYOUTS for label, key, state in _malformed(name)]


def test_the_untouched_fixtures_convert(tmp_path):
    for name in LAYOUTS:
        out = tmp_path / name
        out.mkdir()
        _convert(name, _state(name), out)
        assert (out / "new" / "sub" / "out" / "config.json").is_file()


@pytest.mark.parametrize("name,label,key,state", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_a_malformed_checkpoint_is_refused_naming_file_and_key(tmp_path, name, label, key, state):
    with pytest.raises(AutonatError) as e:
        _convert(name, state, tmp_path)
    msg = str(e.value)
    assert msg.startswith(str(tmp_path)), msg                      # the file
    assert key in msg, msg                                         # the checkpoint key
    if label.startswith(("transposed", "short")):
        assert "expected" in msg and "found" in msg, msg
    assert "\x1b[" not in msg and "2.6" not in msg
    assert not (tmp_path / "new").exists()                         # no output, not even its parent


def test_the_cli_exits_2_without_a_traceback(tmp_path):
    state = _state("uvit")
    state.pop("out_blocks.1.mlp.fc2.bias")
    torch.save(state, tmp_path / "c.pth")
    torch.save(_state("vqgan"), tmp_path / "v.pth")
    r = subprocess.run([sys.executable, "-m", "autonat", "convert", "--checkpoint", str(tmp_path / "c.pth"),
                        "--vqgan", str(tmp_path / "v.pth"), "--heads", "2", "--image-size", "64", "--groups", "2",
                        "--out", str(tmp_path / "a" / "b")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("autonat: error: ") and "out_blocks.1.mlp.fc2.bias" in r.stderr
    assert not (tmp_path / "a").exists()
