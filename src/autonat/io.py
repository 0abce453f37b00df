"""Saving and loading: atomic files and directories, JSON configs, safetensors, identity hashes.

Everything autonat saves is a directory holding `config.json` plus `*.safetensors` (and a
`manifest.json` for caches). Writes go to a temporary sibling, are fsync'ed, then renamed into
place, so an interrupted job never leaves a half-written checkpoint where a good one was.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file, save_file

class AutonatError(Exception):
    """An error caused by the user's input (bad file, bad option); the CLI prints it without a traceback."""


class Interrupted(Exception):
    """A long job stopped on a signal after saving its state (`signum` = the signal)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


# ----------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; saved artefacts are meant to be shared
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def atomic_save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                        metadata: Mapping[str, str] | None = None) -> None:
    """safetensors file written atomically (contiguous CPU copies; shared storage is cloned)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        save_file(clean, tmp, metadata=dict(metadata) if metadata else None)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class AtomicDir:
    """Context manager that builds a directory under a temporary name and renames it into place.

    >>> with AtomicDir("out/ckpt") as tmp:
    ...     atomic_write_json(tmp / "config.json", {...})
    On an exception the temporary directory is removed and `out/ckpt` is left untouched.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.tmp: Path | None = None
        self.created: list[Path] = []       # parent directories this writer made (removed on error)

    def __enter__(self) -> Path:
        if self.path.is_symlink():
            raise AutonatError(f"{self.path} is a symbolic link; give the name of a new directory")
        missing = []
        parent = self.path.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.created = missing
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                         dir=self.path.parent))
        return self.tmp

    def _clean_up(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        for d in self.created:                 # innermost first; only if still empty
            try:
                d.rmdir()
            except OSError:
                break

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            self._clean_up()
            return
        os.chmod(self.tmp, 0o755)  # mkdtemp creates 0700
        old = None
        try:
            if self.path.exists():
                old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
                if old.exists():
                    shutil.rmtree(old)
                os.replace(self.path, old)
            os.replace(self.tmp, self.path)
        except OSError as e:
            if old is not None and not self.path.exists():
                os.replace(old, self.path)          # put the previous version back
            self._clean_up()
            raise AutonatError(f"cannot write {self.path}: {e.strerror or e}") from None
        _fsync_dir(self.path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def load_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise AutonatError(f"missing file: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise AutonatError(f"{path} is not valid JSON: {e}") from None


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise AutonatError(f"missing weights file: {path}")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises several types for corrupt headers
        raise AutonatError(f"cannot read weights {path}: {e}") from None


# ----------------------------------------------------------------------------------------------
# Identity hashes
# ----------------------------------------------------------------------------------------------

def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def dir_identity(path: str | os.PathLike) -> str:
    """Stable identity of a saved model directory: sha256 over config.json and model.safetensors."""
    path = Path(path)
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        h.update(name.encode())
        h.update(sha256_file(path / name).encode())
    return h.hexdigest()[:16]


def files_identity(files: Mapping[str, bytes]) -> str:
    """`dir_identity` of a directory that would hold exactly these files (computed in memory)."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        h.update(name.encode())
        h.update(hashlib.sha256(files[name]).hexdigest().encode())
    return h.hexdigest()[:16]


def json_bytes(obj: Any) -> bytes:
    """The bytes `atomic_write_json` writes for `obj`."""
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()


def tensor_bytes(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """The bytes `atomic_save_tensors` writes for `tensors`."""
    from safetensors.torch import save
    return save({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})
