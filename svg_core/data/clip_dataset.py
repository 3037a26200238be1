"""torch Dataset over a clip store (KTH, BAIR, folders): random clips, pure functions of (seed, index)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from svg_core.data.clips import FRAMES_NAME, load_index, open_frames
from svg_core.errors import SVGError

log = logging.getLogger("svg")

DEFAULT_LENGTH = 10**9


class ClipDataset(Dataset):
    """Map-style stream of clips of `seq_len` frames cut from the videos of a clip store.

    Item i draws, from `np.random.default_rng([seed, i])`, a video uniformly (as SRVP does) and a
    start uniformly among its valid starts, and returns {"frames": (T, C, H, W) float32 in [0, 1]}
    plus each per-frame extra of the store (e.g. BAIR "actions" (T, 4)) as float32. The arrays are
    memory-mapped lazily, once per process: DataLoader workers open their own maps and need no
    other seeding.
    """

    def __init__(self, store: str | os.PathLike, videos: list[dict[str, Any]], seq_len: int, seed: int, *,
                 extras: tuple[str, ...] = (), length: int = DEFAULT_LENGTH) -> None:
        if not videos or seq_len < 1 or seed < 0 or length < 1:
            raise SVGError(f"ClipDataset needs videos, seq_len >= 1, seed >= 0 and length >= 1 "
                           f"(got {len(videos)} videos, {seq_len}, {seed}, {length})")
        short = [v["name"] for v in videos if v["length"] < seq_len]
        if short:
            raise SVGError(f"videos shorter than {seq_len} frames given to ClipDataset: {short[:5]}")
        self.store, self.seq_len, self.seed, self.length = str(store), int(seq_len), int(seed), int(length)
        self.extras = tuple(extras)
        self.names = [v["name"] for v in videos]
        self.starts = np.array([v["start"] for v in videos], dtype=np.int64)
        self.n_starts = np.array([v["length"] - seq_len + 1 for v in videos], dtype=np.int64)
        self._arrays: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None  # each worker maps the files itself
        return state

    def _open(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            arrays = {"frames": open_frames(self.store, FRAMES_NAME)}
            arrays.update({k: open_frames(self.store, f"{k}.npy") for k in self.extras})
            self._arrays = arrays
        return self._arrays

    def clip(self, index: int) -> tuple[int, int]:
        """(video number, first frame within that video) of item `index`."""
        if not 0 <= index < self.length:
            raise IndexError(f"clip index {index} out of range [0, {self.length})")
        rng = np.random.default_rng([self.seed, int(index)])
        video = int(rng.integers(len(self.starts)))
        return video, int(rng.integers(self.n_starts[video]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        video, t0 = self.clip(index)
        first = int(self.starts[video]) + t0
        arrays = self._open()
        # numpy, not torch, for the cast: torch's intra-op threads cost 50x more than the work on a busy CPU
        frames = np.divide(arrays["frames"][first:first + self.seq_len], np.float32(255.0), dtype=np.float32)
        item = {"frames": torch.from_numpy(frames)}
        for key in self.extras:
            item[key] = torch.from_numpy(np.array(arrays[key][first:first + self.seq_len], dtype=np.float32))
        return item


def open_store_dataset(store: str | os.PathLike, *, split: str | None, seq_len: int, seed: int, image_size: int,
                       channels: int, dataset: str | None = None, short: str = "skip") -> ClipDataset:
    """A ClipDataset over the videos of `split` (None: all) in a store, checked against the model.

    short="skip" leaves out videos shorter than seq_len (logged); short="error" refuses them and
    names them.
    """
    index = load_index(store)
    name = index["dataset"]
    if dataset is not None and name != dataset:
        raise SVGError(f"{store} holds the {name!r} dataset, not {dataset!r}: pass the directory converted "
                       f"by `svg data {dataset}`")
    if index["image_size"] != image_size:
        raise SVGError(f"{store} holds {index['image_size']}x{index['image_size']} frames but the model is "
                       f"{image_size}x{image_size}: pass --image-size {index['image_size']} or convert the "
                       f"data again at size {image_size}")
    if index["channels"] != channels:
        raise SVGError(f"{store} holds {_describe(index['channels'])} frames but the model has {channels} "
                       f"channel(s): build the model with channels={index['channels']} (`svg train` does so itself "
                       f"for a new run; a resumed run keeps its checkpoint's channels)")
    videos = [v for v in index["videos"] if split is None or v["split"] == split]
    if not videos:
        raise SVGError(f"{store} has no {split!r} videos: convert the dataset again")
    too_short = [v for v in videos if v["length"] < seq_len]
    if too_short and short == "error":
        listed = ", ".join(f"{v['name']} ({v['length']} frames)" for v in too_short[:10])
        more = f" and {len(too_short) - 10} more" if len(too_short) > 10 else ""
        raise SVGError(f"{len(too_short)} of {len(videos)} videos are shorter than {seq_len} frames "
                       f"(n_past + n_future): {listed}{more}; remove them or train on shorter sequences "
                       f"(--n-past/--n-future)")
    kept = [v for v in videos if v["length"] >= seq_len]
    if not kept:
        raise SVGError(f"no {split or ''} video in {store} has {seq_len} frames (the longest has "
                       f"{max(v['length'] for v in videos)}): lower --n-past/--n-future")
    if too_short:
        log.info("%s: left out %d videos shorter than %d frames", store, len(too_short), seq_len)
    return ClipDataset(Path(store), kept, seq_len, seed, extras=tuple(index.get("extras", {})))


def _describe(channels: int) -> str:
    return {1: "grayscale (1 channel)", 3: "RGB (3 channels)"}.get(channels, f"{channels}-channel")
