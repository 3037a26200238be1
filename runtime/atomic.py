"""Atomic file writes: readers see the old file or the new one, never a partial one.

Used for everything the project writes (checkpoints, manifests, test sets, pictures), importable
without torch.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, fsync it and rename it over `path`.

    On any error (a crash, a full disk) the temporary file is removed and `path` is untouched.
    The temporary name keeps the suffix, so writers that pick a format by extension work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a hidden temporary folder beside `path`; when the block succeeds, move it into place.

    An existing `path` is an error unless overwrite (then it is swapped out and deleted after the
    move). On any error the temporary folder is removed and `path` is untouched.
    """
    from svg_runtime.errors import SVGRuntimeError

    path = Path(path)
    if path.exists() and not overwrite:
        raise SVGRuntimeError(f"{path} already exists: remove it, choose another --out or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial-"))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700 folders
        trash = path.with_name(f".{path.name}.old-{os.getpid()}") if path.exists() else None
        if trash is not None:
            os.replace(path, trash)
        os.replace(tmp, path)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
