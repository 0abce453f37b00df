"""The trial store and the training skeleton's schedule, value by value: what is stored comes
back, trial keys are stable across versions, the learning rate at every phase, when a run warns,
and what a refused resume says."""
from __future__ import annotations

import math

import pytest

from autonat.io import AutonatError
from autonat.search.store import TrialStore, trial_key
from autonat.trainer import RunOptions, TrainingRun, effective_warmup, lr_at, short_run_warning


def test_trial_keys_are_stable_and_order_free():
    # a golden value: stores written by earlier versions must keep answering the same questions
    obj = {"strategy": {"r": [0.5, 0.0]}, "n": 1000, "seed": 0, "x": 0.1234567891234}
    assert trial_key(obj) == "660849517e03d348fe0bbf79"
    assert trial_key({"seed": 0, "n": 1000, "x": 0.12345678912, "strategy": {"r": [0.5, 0.0]}}) == trial_key(obj)
    assert trial_key({**obj, "n": 1001}) != trial_key(obj)


def test_the_store_returns_what_it_was_given(tmp_path):
    s = TrialStore(tmp_path / "new" / "dir" / "t.sqlite")          # parents are created
    s.put_eval("k", tag="gen", model="m", inputs={"a": [1, 2]}, seed=3, n=10, fid=1.5, metrics={"is": 2.0},
               wall_seconds=0.5)
    assert s.get_eval("k") == {"fid": 1.5, "is": 2.0} and s.get_eval("other") is None
    (ev,) = s.evaluations()
    assert ev["inputs"] == {"a": [1, 2]} and ev["seed"] == 3 and ev["n"] == 10 and ev["tag"] == "gen"
    assert s.evaluations("other-tag") == []
    s.put_training("t", mask_dist="arccos", config={"steps": 5}, seed=1, path="p", model_identity="id",
                   wall_seconds=2.0)
    assert s.get_training("t") == {"path": "p", "model_identity": "id", "wall_seconds": 2.0, "mask_dist": "arccos"}
    s.log_event("alternation", {"fid": 3.0})
    s.log_event("generation_search", {"tag": "gen1"})
    every = s.events()
    assert [e["kind"] for e in every] == ["alternation", "generation_search"]
    assert all("created" in e for e in every) and s.events("alternation")[0]["fid"] == 3.0
    s.close()
    with pytest.raises(AutonatError, match="not a search directory"):
        TrialStore.open_existing(tmp_path / "missing.sqlite")
    assert TrialStore.open_existing(tmp_path / "new" / "dir" / "t.sqlite").get_eval("k")["fid"] == 1.5
    (tmp_path / "zero.sqlite").write_bytes(b"")
    with pytest.raises(AutonatError, match="0 bytes"):
        TrialStore(tmp_path / "zero.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 2000)
    with pytest.raises(AutonatError, match="not a readable trial store"):
        TrialStore(tmp_path / "junk.sqlite")


def test_learning_rate_at_every_phase():
    kw = dict(lr=1.0, warmup=10, steps=200)
    assert [lr_at(s, **kw) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]          # linear warm-up to lr
    assert lr_at(10, **kw) == 1.0                                          # the peak
    assert math.isclose(lr_at(105, **kw), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 95 / 190)))
    assert math.isclose(lr_at(200, **kw), 0.1) and math.isclose(lr_at(500, **kw), 0.1)   # ends at 10 %
    assert math.isclose(lr_at(200, **kw, min_ratio=0.0), 0.0, abs_tol=1e-12)
    assert lr_at(150, **kw, schedule="constant") == 1.0
    assert effective_warmup(500, 2000) == 200 and effective_warmup(100, 2000) == 100
    assert effective_warmup(5, 40) == 4 and effective_warmup(0, 40) == 0 and effective_warmup(3, 9) == 0
    assert lr_at(0, lr=1.0, warmup=500, steps=40) == 0.25                   # capped at 4 steps


def test_short_runs_warn():
    assert short_run_warning(199, 2000, "train") is not None
    assert short_run_warning(200, 2000, "train") is None
    assert "40 steps" in short_run_warning(40, 2000, "train") and "2000" in short_run_warning(40, 2000, "train")


def test_a_refused_resume_names_every_difference(tmp_path):
    import json
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_config.json").write_text(json.dumps({"steps": 10, "lr": 0.1, "old": 1}))
    from autonat.checkpoint import save_checkpoint
    import torch
    save_checkpoint(out, model={"w": torch.zeros(1)}, ema=None, optimizer=None, step=3)
    run = TrainingRun(out, {"steps": 20, "lr": 0.2}, RunOptions(), steps=20, resume=True, desc="t")
    with pytest.raises(AutonatError) as e:
        run.check()
    assert "lr: 0.1 -> 0.2" in str(e.value) and "steps: 10 -> 20" in str(e.value) and "old: 1 -> None" in str(e.value)
    assert "init-from" not in str(e.value)                   # more than the length differs
    longer = TrainingRun(out, {"steps": 20, "lr": 0.1, "old": 1}, RunOptions(), steps=20, resume=True, desc="t")
    with pytest.raises(AutonatError, match="--init-from"):
        longer.check()
    (out / "train_config.json").write_text("[1]")
    with pytest.raises(AutonatError, match="damaged"):
        longer.check()
    fresh = TrainingRun(tmp_path / "other", {"steps": 1}, RunOptions(), steps=1, resume=False, desc="t")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "train_config.json").write_text("{}")
    with pytest.raises(AutonatError, match="already holds a training run"):
        fresh.check()                                         # a config without a checkpoint counts too


def test_resume_of_a_run_stopped_before_its_first_checkpoint(tmp_path):
    """Killed before the first checkpoint: --resume restarts it from step 0 under the same options (not the
    dead end 'already holds a run' / 'nothing to resume'); different options are still refused."""
    out = tmp_path / "r"
    first = TrainingRun(out, {"steps": 5}, RunOptions(), steps=5, resume=False, desc="t", show_progress=False)
    assert first.start() is None
    first.log.write({"step": 1, "loss": 9.0})
    again = TrainingRun(out, {"steps": 5}, RunOptions(), steps=5, resume=True, desc="t", show_progress=False)
    assert again.start() is None and not (out / "log.jsonl").exists()     # fresh log, step 0
    other = TrainingRun(out, {"steps": 6}, RunOptions(), steps=6, resume=True, desc="t")
    with pytest.raises(AutonatError, match="steps: 5 -> 6"):
        other.check()


def test_wall_clock_checkpoints(tmp_path, monkeypatch):
    run = TrainingRun(tmp_path / "r", {"steps": 100}, RunOptions(ckpt_every=1000, ckpt_minutes=0.5), steps=100,
                      resume=False, desc="t", show_progress=False)
    run.start()
    saved = []
    import autonat.trainer as T
    clock = [1000.0]
    monkeypatch.setattr(T.time, "monotonic", lambda: clock[0])
    with run.loop(0):
        run.end_step(1, lambda: saved.append(1))
        clock[0] += 29.0
        run.end_step(2, lambda: saved.append(2))               # 29 s < 30 s: not yet
        clock[0] += 2.0
        run.end_step(3, lambda: saved.append(3))               # 31 s since the loop began
        run.end_step(4, lambda: saved.append(4))
    assert saved == [3] and run.log.path == tmp_path / "r" / "log.jsonl" and run.created


def test_output_checks_before_any_work(tmp_path):
    def run(out, resume=False):
        return TrainingRun(out, {"steps": 1}, RunOptions(), steps=1, resume=resume, desc="t")
    run(tmp_path / "a" / "b" / "c").check()                          # missing parents are fine
    (tmp_path / "f").write_text("x")
    for out, msg in ((tmp_path / "f", f"--out {tmp_path / 'f'} exists and is not a directory"),
                     (tmp_path / "f" / "sub", f"--out {tmp_path / 'f' / 'sub'}: {tmp_path / 'f'} is not a writable "
                                               "directory")):
        with pytest.raises(AutonatError) as e:
            run(out).check()
        assert str(e.value) == msg
    with pytest.raises(AutonatError) as e:
        run(tmp_path / "new", resume=True).check()
    assert str(e.value) == (f"--resume: no checkpoint in {tmp_path / 'new'}/checkpoint (nothing to resume; "
                            "run without --resume to start)")
    assert not (tmp_path / "a").exists() and not (tmp_path / "new").exists()


def test_lr_schedule_one_step_after_warmup():
    # decay over a single post-warm-up step: lr at the first post-warm-up step, lr * min_ratio at the end
    assert lr_at(0, lr=1.0, warmup=0, steps=1) == 1.0
    assert lr_at(1, lr=1.0, warmup=0, steps=1, min_ratio=0.1) == pytest.approx(0.1)
    assert lr_at(2, lr=1.0, warmup=0, steps=3, min_ratio=0.0) == pytest.approx(0.25)       # p = 2/3 at the last step


def test_cost_of_gain_counts_evaluations_and_minutes_to_ninety_percent(tmp_path):
    from autonat.search.report import cost_of_gain
    store = TrialStore(tmp_path / "t.sqlite")
    runs = [("screen", 10.0, 60), ("screen", 6.0, 60), ("gen", 5.0, 120), ("gen", 1.9, 120),   # 90 %: F <= 1.9
            ("gen-validate", 0.5, 30), ("gen", 1.0, 120), ("final-found", 0.1, 600)]
    for k, (tag, f, sec) in enumerate(runs):
        store.put_eval(f"k{k}", tag=tag, model="m", inputs={}, seed=0, n=10, fid=f, metrics={}, wall_seconds=sec)
    c = cost_of_gain(store)
    store.close()
    # start 10 -> best 1.0 on the search's own evaluations (validation and final ones do not count)
    assert (c["start"], c["best"]) == (10.0, 1.0)
    assert c["evaluations"] == 4 and c["minutes"] == pytest.approx(6.0)
    assert c["total_evaluations"] == 7 and c["total_minutes"] == pytest.approx(18.5)
