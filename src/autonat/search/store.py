"""Trial store (SQLite): every FID evaluation and every candidate training of a search.

Rows are keyed by a hash of everything that determines the result (model identity, strategy
values, n, seed, noise mode for evaluations; p(r), training config and seed for trainings), so
re-running a killed search returns finished trials from the store instead of recomputing them.
Each row is committed as soon as it finishes (SQLite transactions are atomic; the database runs
in WAL mode with synchronous writes), so a kill at any moment loses at most the trial in flight.
A store that is not an SQLite database, is damaged, or is empty although it should hold a
search is a clear error saying what to do, never a traceback or a silent recomputation.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..io import AutonatError

SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    key TEXT PRIMARY KEY, tag TEXT, model TEXT, inputs TEXT, seed INTEGER, n INTEGER,
    fid REAL, metrics TEXT, wall_seconds REAL, created REAL);
CREATE TABLE IF NOT EXISTS trainings (
    key TEXT PRIMARY KEY, mask_dist TEXT, config TEXT, seed INTEGER, path TEXT,
    model_identity TEXT, wall_seconds REAL, created REAL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, payload TEXT, created REAL);
"""


def trial_key(obj: Any) -> str:
    """Stable hash of a JSON-serialisable description (floats rounded to 1e-9)."""
    def norm(x):
        if isinstance(x, float):
            return round(x, 9)
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        if isinstance(x, dict):
            return {k: norm(v) for k, v in sorted(x.items())}
        return x
    return hashlib.sha256(json.dumps(norm(obj), sort_keys=True).encode()).hexdigest()[:24]


class TrialStore:
    """Thin wrapper over a SQLite file; safe to reopen after a crash."""

    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        exists = self.path.exists()
        if exists and not self.path.is_file():
            raise AutonatError(f"{self.path} is not a file")
        if exists and self.path.stat().st_size == 0:
            raise AutonatError(f"{self.path} is empty (0 bytes): the trial store was lost (a crash or a disk "
                               f"error). Delete it to recompute every trial, or restore it from a backup")
        if not exists and not create:
            raise AutonatError(f"no trial store at {self.path} (not a search directory)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(self.path), timeout=60)
            if exists:
                ok = self.db.execute("PRAGMA quick_check").fetchone()
                if not ok or ok[0] != "ok":
                    raise sqlite3.DatabaseError(str(ok[0] if ok else "quick_check failed"))
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            self.db.commit()
        except sqlite3.DatabaseError as e:
            raise AutonatError(f"{self.path} is not a readable trial store ({e}). If it is damaged, delete it "
                               f"to recompute every trial (finished trainings in trainings/ are not lost)") from None

    @classmethod
    def open_existing(cls, path: str | Path) -> "TrialStore":
        return cls(path, create=False)

    def close(self) -> None:
        self.db.close()

    # -- evaluations ---------------------------------------------------------------------------
    def get_eval(self, key: str) -> dict | None:
        row = self.db.execute("SELECT fid, metrics FROM evaluations WHERE key = ?", (key,)).fetchone()
        return None if row is None else {"fid": row[0], **json.loads(row[1])}

    def put_eval(self, key: str, *, tag: str, model: str, inputs: dict, seed: int, n: int, fid: float,
                 metrics: dict, wall_seconds: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO evaluations VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (key, tag, model, json.dumps(inputs), seed, n, fid, json.dumps(metrics),
                         wall_seconds, time.time()))
        self.db.commit()

    def evaluations(self, tag: str | None = None) -> list[dict]:
        q = "SELECT key, tag, model, inputs, seed, n, fid, metrics, wall_seconds, created FROM evaluations"
        rows = self.db.execute(q + (" WHERE tag = ?" if tag else "") + " ORDER BY created, rowid",
                               (tag,) if tag else ()).fetchall()
        cols = ["key", "tag", "model", "inputs", "seed", "n", "fid", "metrics", "wall_seconds", "created"]
        out = []
        for r in rows:
            d = dict(zip(cols, r))
            d["inputs"], d["metrics"] = json.loads(d["inputs"]), json.loads(d["metrics"])
            out.append(d)
        return out

    # -- trainings -----------------------------------------------------------------------------
    def get_training(self, key: str) -> dict | None:
        row = self.db.execute("SELECT path, model_identity, wall_seconds, mask_dist FROM trainings WHERE key = ?",
                              (key,)).fetchone()
        return None if row is None else {"path": row[0], "model_identity": row[1], "wall_seconds": row[2],
                                         "mask_dist": row[3]}

    def put_training(self, key: str, *, mask_dist: str, config: dict, seed: int, path: str,
                     model_identity: str, wall_seconds: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO trainings VALUES (?,?,?,?,?,?,?,?)",
                        (key, mask_dist, json.dumps(config), seed, path, model_identity, wall_seconds, time.time()))
        self.db.commit()

    def trainings(self) -> list[dict]:
        rows = self.db.execute("SELECT key, mask_dist, path, wall_seconds FROM trainings ORDER BY created").fetchall()
        return [dict(zip(["key", "mask_dist", "path", "wall_seconds"], r)) for r in rows]

    # -- free-form progress events (alternation results, phase markers) -----------------------
    def log_event(self, kind: str, payload: dict) -> None:
        self.db.execute("INSERT INTO events (kind, payload, created) VALUES (?,?,?)",
                        (kind, json.dumps(payload), time.time()))
        self.db.commit()

    def events(self, kind: str | None = None) -> list[dict]:
        q = "SELECT kind, payload, created FROM events"
        rows = self.db.execute(q + (" WHERE kind = ?" if kind else "") + " ORDER BY id", (kind,) if kind else ()).fetchall()
        return [{"kind": k, **json.loads(p), "created": c} for k, p, c in rows]
