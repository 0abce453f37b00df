"""Crash safety: a kill at any instant loses at most the work since the last checkpoint, and the
next run continues (bit-identical where the run is deterministic).

Unit tests put the run directory in every state a kill can leave (a torn log line, each step of
the checkpoint swap, a store killed mid-write); the slow tests kill real `autonat train`,
`autonat tokenize` and `autonat search` processes with SIGKILL at several seeded-random instants
and resume them until done, then compare with an uninterrupted run."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from autonat.checkpoint import find_latest, load_checkpoint, save_checkpoint
from autonat.io import AutonatError, load_tensors
from autonat.jobs import JsonlLog


def _ck(out, step):
    m = {"w": torch.full((3,), float(step))}
    return save_checkpoint(out, model=m, ema=m, optimizer=None, step=step)


def test_every_state_of_the_checkpoint_swap_resumes(tmp_path):
    out = tmp_path / "run"
    _ck(out, 1)
    root = out / "checkpoint"
    # (a) killed while writing step 2: a stray temporary -> step 1 is loaded, the stray is cleaned next save
    shutil.copytree(root / "step-00000001", root / "step-00000002.tmp-x")
    (root / "step-00000002.tmp-x" / "state.json").unlink()
    assert load_checkpoint(out)["meta"]["step"] == 1
    # (b) killed after the rename, before LATEST moved: the newest complete directory wins
    shutil.copytree(root / "step-00000001", root / "step-00000002")
    (root / "step-00000002" / "state.json").write_text(json.dumps({"step": 2}))
    assert load_checkpoint(out)["meta"]["step"] in (1, 2)            # either, never neither
    # (c) LATEST names a directory that is gone (killed while deleting): fall back, never "no checkpoint"
    (root / "LATEST").write_text("step-00000099\n")
    assert load_checkpoint(out)["meta"]["step"] == 2
    # (d) LATEST missing altogether: the newest complete directory of several
    (root / "LATEST").unlink()
    shutil.copytree(root / "step-00000001", root / "step-00000000")
    assert load_checkpoint(out)["meta"]["step"] == 2
    shutil.rmtree(root / "step-00000000")
    _ck(out, 3)
    assert sorted(p.name for p in root.iterdir()) == ["LATEST", "step-00000003"]   # strays cleaned
    assert torch.equal(load_tensors(find_latest(out) / "model.safetensors")["w"], torch.full((3,), 3.0))
    assert (root / "LATEST").read_text() == "step-00000003\n"
    # (e) a save that dies mid-write leaves nothing behind, in the checkpoint directory or elsewhere
    import tempfile
    import autonat.checkpoint as C
    before = set(os.listdir(tempfile.gettempdir()))
    real = C.atomic_write_json
    def die(*a, **k):
        raise OSError("disk full")
    C.atomic_write_json = die
    try:
        with pytest.raises(OSError):
            _ck(out, 4)
    finally:
        C.atomic_write_json = real
    assert sorted(p.name for p in root.iterdir()) == ["LATEST", "step-00000003"]
    assert set(os.listdir(tempfile.gettempdir())) <= before | {p for p in os.listdir(tempfile.gettempdir())
                                                               if not p.startswith("step-")}


def test_no_complete_checkpoint_is_none(tmp_path):
    (tmp_path / "checkpoint" / "step-00000001.tmp-x").mkdir(parents=True)
    assert find_latest(tmp_path) is None and load_checkpoint(tmp_path) is None
    _ck(tmp_path, 1)
    half = tmp_path / "checkpoint" / "step-00000002"          # weights written, state.json not yet
    half.mkdir()
    shutil.copy(tmp_path / "checkpoint" / "step-00000001" / "model.safetensors", half)
    (tmp_path / "checkpoint" / "LATEST").unlink()
    assert find_latest(tmp_path).name == "step-00000001"
    (half / "model.safetensors").unlink()
    (half / "state.json").write_text('{"step": 2}')            # state written, weights missing
    assert find_latest(tmp_path).name == "step-00000001"


def test_torn_log_line_is_dropped_on_resume(tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl")
    for s in (1, 2, 3):
        log.write({"step": s, "loss": 1.0 / s})
    with open(log.path, "a") as f:
        f.write('{"step": 4, "lo')                     # a kill mid-write
    log.truncate_after(2)
    assert [r["step"] for r in log.records()] == [1, 2]
    with open(log.path, "a") as f:
        f.write('garbage\n{"step": 3}\n')               # damage in the middle is an error, named
    with pytest.raises(AutonatError, match="line 3"):
        log.records()


def test_trial_store_survives_a_kill_mid_transaction(tmp_path):
    from autonat.search.store import TrialStore
    s = TrialStore(tmp_path / "t.sqlite")
    s.put_eval("a", tag="t", model="m", inputs={}, seed=0, n=1, fid=1.0, metrics={}, wall_seconds=0)
    code = (f"import sqlite3, os; db = sqlite3.connect({str(tmp_path / 't.sqlite')!r}); "
            "db.execute(\"INSERT INTO evaluations VALUES ('b','t','m','{}',0,1,2.0,'{}',0,0)\"); os._exit(9)")
    subprocess.run([sys.executable, "-c", code], check=False)          # dies before committing
    s.close()
    again = TrialStore(tmp_path / "t.sqlite")
    assert again.get_eval("a")["fid"] == 1.0 and again.get_eval("b") is None
    again.close()


# ----------------------------------------------------------------------------------------------
# kill -9 of real processes
# ----------------------------------------------------------------------------------------------

def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "AUTONAT_PROGRESS": "0"}


def _kill_resume(argv, conditions, resume_flag=None, timeout=600):
    """Run argv and SIGKILL it as soon as each condition (a function of nothing, polled every 20 ms)
    holds, re-running it (with resume_flag after the first kill) each time; then run it to completion.
    Returns the number of kills that hit a live process."""
    hits = 0
    for i, cond in enumerate(conditions):
        cmd = argv + ([resume_flag] if resume_flag and i > 0 else [])
        p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while p.poll() is None and not cond():
            time.sleep(0.02)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            hits += 1
        p.wait()
    final = argv + ([resume_flag] if resume_flag and conditions else [])
    _kill_resume.final_start = time.time()
    r = subprocess.run(final, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return hits


def _logged_step(path):
    """The last step in a JSONL log (0 if none), tolerating a line being written."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    for ln in reversed(lines):
        try:
            return json.loads(ln).get("step", 0)
        except ValueError:
            continue
    return 0


AUTONAT = [sys.executable, "-m", "autonat"]


@pytest.mark.slow
def test_kill9_train_resumes_bit_identical(tmp_path, token_cache):
    base = AUTONAT + ["train", "--tokens", str(token_cache.path), "--model", "tiny", "--steps", "40",
                      "--batch-size", "8", "--ckpt-every", "1", "--log-every", "1", "--no-bf16", "--device", "cpu",
                      "--quiet"]
    subprocess.run(base + ["--out", str(tmp_path / "ref")], env=_env(), check=True, capture_output=True)
    rng = random.Random(0)
    log = tmp_path / "k" / "log.jsonl"
    at = sorted(rng.sample(range(2, 38), 4))          # kill right after these steps were logged
    hits = _kill_resume(base + ["--out", str(tmp_path / "k")], [lambda s=s: _logged_step(log) >= s for s in at],
                        resume_flag="--resume")
    assert hits >= 3
    a, b = load_tensors(tmp_path / "ref" / "model.safetensors"), load_tensors(tmp_path / "k" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    la = [json.loads(x)["loss"] for x in (tmp_path / "ref" / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    lb = [json.loads(x)["loss"] for x in (tmp_path / "k" / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    assert la == lb
    # resumed, not restarted: the steps done before the last kill kept their records
    times = [json.loads(x)["time"] for x in (tmp_path / "k" / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    assert min(times) < _kill_resume.final_start < max(times)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_same_run(tmp_path, token_cache):
    base = AUTONAT + ["train", "--tokens", str(token_cache.path), "--model", "tiny", "--steps", "30",
                      "--batch-size", "8", "--ckpt-every", "1000", "--log-every", "1", "--no-bf16", "--device", "cpu"]
    subprocess.run(base + ["--out", str(tmp_path / "ref"), "--quiet"], env=_env(), check=True, capture_output=True)
    p = subprocess.Popen(base + ["--out", str(tmp_path / "c"), "--quiet"], env=_env(), stderr=subprocess.PIPE, text=True)
    while p.poll() is None and _logged_step(tmp_path / "c" / "log.jsonl") < 5:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130 and "--resume" in err and "Traceback" not in err, err
    from autonat.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path / "c")["meta"]["step"] >= 5         # saved on the signal (every 1000 otherwise)
    subprocess.run(base + ["--out", str(tmp_path / "c"), "--quiet", "--resume"], env=_env(), check=True,
                   capture_output=True)
    a, b = load_tensors(tmp_path / "ref" / "model.safetensors"), load_tensors(tmp_path / "c" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_kill9_tokenize_resumes_identical(tmp_path, tok):
    from conftest import random_images
    from PIL import Image
    root = tmp_path / "imgs"
    (root / "x").mkdir(parents=True)
    for i, im in enumerate(random_images(600).images):
        Image.fromarray(im[0].numpy(), mode="L").save(root / "x" / f"{i}.png")
    tok.save_pretrained(tmp_path / "tok")
    base = AUTONAT + ["tokenize", "--tokenizer", str(tmp_path / "tok"), "--data", str(root), "--hflip",
                      "--batch-size", "20", "--device", "cpu", "--quiet"]
    subprocess.run(base + ["--out", str(tmp_path / "ref")], env=_env(), check=True, capture_output=True)
    prog = tmp_path / "k" / "progress.json"

    def done_at_least(n):
        try:
            return json.loads(prog.read_text())["done"] >= n
        except (OSError, ValueError, KeyError):
            return False
    rng = random.Random(1)
    at = sorted(rng.sample([200, 400], 2))            # progress is saved every 10 batches = 200 images
    assert _kill_resume(base + ["--out", str(tmp_path / "k")], [lambda n=n: done_at_least(n) for n in at]) >= 1
    import numpy as np
    assert (np.load(tmp_path / "ref" / "tokens.npy") == np.load(tmp_path / "k" / "tokens.npy")).all()


@pytest.mark.slow
def test_kill9_search_resumes_without_repeating(tmp_path, token_cache):
    from autonat.models.registry import save_model
    from conftest import tiny_uvit
    from PIL import Image
    import numpy as np
    tok_dir = tmp_path / "tok"
    from conftest import tiny_tokenizer
    tiny_tokenizer().save_pretrained(tok_dir)
    t = tiny_tokenizer()
    save_model(tiny_uvit(), tmp_path / "m", tokenizer={"name": str(tok_dir), "identity": t.identity})
    refs = tmp_path / "refs" / "x"
    refs.mkdir(parents=True)
    for i in range(16):
        Image.fromarray((np.random.default_rng(i).random((28, 28)) * 255).astype(np.uint8), mode="L").save(refs / f"{i}.png")
    base = AUTONAT + ["search", "--only", "generation", "--model", str(tmp_path / "m"), "--steps", "3", "--n", "8",
                      "--n-final", "8", "--batch-size", "8", "--method", "spsa", "--max-updates", "4",
                      "--ref-data", str(refs.parent), "--no-bf16", "--device", "cpu", "--quiet"]
    subprocess.run(base + ["--out", str(tmp_path / "ref")], env=_env(), check=True, capture_output=True)
    store = tmp_path / "k" / "trials.sqlite"

    def evals_at_least(n):
        try:
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1) as db:
                return db.execute("select count(*) from evaluations").fetchone()[0] >= n
        except sqlite3.Error:
            return False
    rng = random.Random(2)
    at = sorted(rng.sample(range(1, 9), 3))
    assert _kill_resume(base + ["--out", str(tmp_path / "k")], [lambda n=n: evals_at_least(n) for n in at]) >= 2
    a = json.loads((tmp_path / "ref" / "best_strategy.json").read_text())
    b = json.loads((tmp_path / "k" / "best_strategy.json").read_text())
    assert a["r"] == b["r"] and a["tau1"] == b["tau1"] and a["final"] == b["final"]
    with sqlite3.connect(tmp_path / "k" / "trials.sqlite") as db:
        keys = [r[0] for r in db.execute("select key from evaluations")]
    assert len(keys) == len(set(keys))
