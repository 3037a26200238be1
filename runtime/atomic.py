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


def temp_prefix(stem: str) -> str:
    """`{stem}-{pid}-`: temporary names carry their writer's pid, so a later run can tell the
    leftovers of a killed process (pid gone) from the files of a live one."""
    return f"{stem}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike, stem: str = ".tmp") -> list[Path]:
    """Delete the temporaries `{stem}-{pid}-*` in folder whose writer process is gone (killed
    mid-write: kill -9, power loss); returns what was removed."""
    removed = []
    for entry in Path(folder).glob(f"{stem}-*-*"):
        pid = entry.name[len(stem) + 1:].partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def make_temp_dir(parent: str | os.PathLike, stem: str) -> Path:
    """A new directory `{stem}-{pid}-*` in parent, with the permissions the umask gives (mkdtemp's
    0700 would hide a bundle from other users, e.g. a robot's service account)."""
    path = Path(tempfile.mkdtemp(dir=parent, prefix=temp_prefix(stem)))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, fsync it and rename it over `path`.

    On any error (a crash, a full disk) the temporary file is removed and `path` is untouched.
    The temporary name keeps the suffix, so writers that pick a format by extension work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(".tmp"), suffix=path.suffix)
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
        old = make_temp_dir(out.parent, f".{out.name}.old")
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
