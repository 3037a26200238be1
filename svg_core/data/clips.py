"""Clip store: converted videos as one memory-mapped uint8 array plus a JSON index.

KTH, BAIR and folders of user videos are all converted once into this layout, so that training
never decodes a video:

    DIR/frames.npy    shape = (N, C, H, W) uint8, every video's frames one after the other
    DIR/<extra>.npy   shape = (N, D) float32 per-frame extras (BAIR: actions, endeffector_pos)
    DIR/index.json    {"format": "svg-clips", "version": 1, "dataset", "image_size", "channels",
                       "n_frames", "extras", "videos": [{"name", "start", "length", "split", ...}], ...}

A writer fills a hidden temporary directory beside DIR and renames it at the end: a failed or
interrupted conversion leaves no partial output.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from svg_core.errors import SVGError
from svg_runtime.atomic import replace_dir

log = logging.getLogger("svg")

FORMAT, VERSION = "svg-clips", 1
INDEX_NAME, FRAMES_NAME = "index.json", "frames.npy"
_HEADER_LEN = 128  # fixed .npy header size: the shape is rewritten in place once the count is known


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version-1 .npy header padded to exactly _HEADER_LEN bytes."""
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": tuple(int(s) for s in shape)}).encode("latin1")
    pad = _HEADER_LEN - 10 - len(text) - 1
    if pad < 0:
        raise AssertionError(f"shape {shape} does not fit the fixed .npy header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", _HEADER_LEN - 10) + text + b" " * pad + b"\n"


class _Appender:
    """Appends rows of one (n, *row_shape) array to a .npy file whose length is unknown up front."""

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: Any) -> None:
        self.path, self.row_shape, self.dtype, self.rows = path, tuple(row_shape), np.dtype(dtype), 0
        self.file = open(path, "wb")
        self.file.write(_npy_header((0, *self.row_shape), self.dtype))

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise AssertionError(f"rows of shape {rows.shape[1:]} appended to an array of rows {self.row_shape}")
        self.file.write(rows.tobytes())
        self.rows += rows.shape[0]

    def close(self) -> None:
        if self.file.closed:
            return
        self.file.seek(0)
        self.file.write(_npy_header((self.rows, *self.row_shape), self.dtype))
        self.file.close()


class ClipWriter:
    """Writes a clip store atomically; use as a context manager and call `commit()` at the end.

    `add(frames, info, extras)` takes frames shape = (T, C, H, W) uint8 and, per extra named at
    construction, an array shape = (T, D). Leaving the block without `commit()` (an error, Ctrl-C)
    deletes everything written.
    """

    def __init__(self, out: str | os.PathLike, *, dataset: str, image_size: int, channels: int,
                 extras: dict[str, int] | None = None, overwrite: bool = False) -> None:
        self.out = check_output(out, overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.partial-"))
        self.meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "dataset": dataset,
                                     "image_size": int(image_size), "channels": int(channels),
                                     "extras": dict(extras or {})}
        self.videos: list[dict[str, Any]] = []
        self._frames = _Appender(self.tmp / FRAMES_NAME, (channels, image_size, image_size), np.uint8)
        self._extras = {k: _Appender(self.tmp / f"{k}.npy", (d,), np.float32) for k, d in (extras or {}).items()}
        self.committed = False

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.abort()

    @property
    def n_frames(self) -> int:
        return self._frames.rows

    def add(self, frames: np.ndarray, info: dict[str, Any], extras: dict[str, np.ndarray] | None = None) -> None:
        """Append one video: frames shape = (T, C, H, W) uint8; info is stored in the index."""
        n = len(frames)
        for key, app in self._extras.items():
            values = (extras or {}).get(key)
            if values is None or len(values) != n:
                raise AssertionError(f"extra {key!r} needs {n} rows for video {info.get('name')}")
            app.append(values)
        self.videos.append({**info, "start": self._frames.rows, "length": n})
        self._frames.append(frames)

    def reduce_to_gray(self) -> None:
        """Keep only the first channel of every frame written so far (all videos were gray)."""
        self._frames.close()
        src, dst = self._frames.path, self.tmp / f".gray-{FRAMES_NAME}"
        frames = np.load(src, mmap_mode="r", allow_pickle=False)
        gray = _Appender(dst, (1, *frames.shape[2:]), np.uint8)
        for i in range(0, len(frames), 4096):
            gray.append(frames[i:i + 4096, :1])
        del frames
        gray.close()
        os.replace(dst, src)
        gray.path = src
        self._frames, self.meta["channels"] = gray, 1

    def commit(self, **meta: Any) -> Path:
        """Close the arrays, write index.json and move the store into place."""
        for app in (self._frames, *self._extras.values()):
            app.close()
        index = {**self.meta, **meta, "n_frames": self._frames.rows, "videos": self.videos}
        (self.tmp / INDEX_NAME).write_text(json.dumps(index, indent=1))
        replace_dir(self.tmp, self.out)  # --overwrite: the old store is swapped out, then deleted
        self.committed = True
        log.info("wrote %d videos (%d frames) to %s", len(self.videos), self._frames.rows, self.out)
        return self.out

    def abort(self) -> None:
        for app in (self._frames, *self._extras.values()):
            app.file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def check_output(out: str | os.PathLike, overwrite: bool) -> Path:
    """out as a Path; SVGError if it exists and may not be replaced (call before any long work)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise SVGError(f"{out} already exists: remove it, choose another --out or pass --force")
    return out


def load_index(store: str | os.PathLike) -> dict[str, Any]:
    """The index of a clip store, validated; clear errors for a missing or foreign directory."""
    path = Path(store) / INDEX_NAME
    if not path.is_file():
        raise SVGError(f"{store} is not a converted dataset (no {INDEX_NAME}): convert the raw data first, "
                       f"e.g. `svg data kth RAW_DIR --out {store}` or `svg data bair SOFTMOTION_DIR --out {store}`")
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SVGError(f"cannot read {path} ({e}): convert the dataset again") from e
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise SVGError(f"{store} holds format {index.get('format')!r} version {index.get('version')!r}, "
                       f"not {FORMAT!r} version {VERSION}: convert the dataset again with this svg-video")
    return index


def open_frames(store: str | os.PathLike, name: str = FRAMES_NAME) -> np.ndarray:
    """A read-only memory map of one array of a store (no pickle)."""
    try:
        return np.load(Path(store) / name, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SVGError(f"cannot open {Path(store) / name} ({e}): convert the dataset again") from e
