"""Atomic file writes: readers see the old file or the new one, never a partial one.

Used for everything the project writes (checkpoints, manifests, test sets, pictures, bundles and
clip stores), importable without torch. Part of the runtime's base layer (docs/design.md): every
package may import it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from svg_runtime.errors import SVGRuntimeError


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


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], *, compress: bool = True) -> Path:
    """Write named arrays to an .npz atomically, readable with allow_pickle=False; returns the path.

    compress=False writes a plain np.savez archive (faster to write and read, larger).
    """
    path = Path(path)
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise SVGRuntimeError(f"array {key!r} has dtype object, which cannot be saved without pickle")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)
    return path


def replace_dir(staging: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Move a finished directory into place: rename staging to out (same filesystem).

    An existing out is first renamed into a hidden directory beside it and deleted after the swap, so
    readers see the old directory or the new one, and a crash leaves at worst a hidden leftover.
    """
    staging, out = Path(staging), Path(out)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / out.name)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


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
        replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
