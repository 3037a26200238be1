"""torch Dataset over a clip store (KTH, BAIR, folders): random clips, pure functions of (seed, index)."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
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
    plus each per-frame extra of the store (e.g. BAIR "actions" (T, 4)) as float32, except the
    `transitions` extras, which hold one row per step between frames (row t: from frame t to t+1;
    each video's last row is padding) and come as (T - 1, D). The arrays are memory-mapped lazily,
    once per process: DataLoader workers open their own maps and need no other seeding.

    action_dim (0 without actions) and action_names describe the "actions" transitions extra.
    """

    def __init__(self, store: str | os.PathLike, videos: list[dict[str, Any]], seq_len: int, seed: int, *,
                 extras: tuple[str, ...] = (), transitions: tuple[str, ...] = (), action_dim: int = 0,
                 action_names: tuple[str, ...] = (), length: int = DEFAULT_LENGTH) -> None:
        if not videos or seq_len < 1 or seed < 0 or length < 1:
            raise SVGError(f"ClipDataset needs videos, seq_len >= 1, seed >= 0 and length >= 1 "
                           f"(got {len(videos)} videos, {seq_len}, {seed}, {length})")
        short = [v["name"] for v in videos if v["length"] < seq_len]
        if short:
            raise SVGError(f"videos shorter than {seq_len} frames given to ClipDataset: {short[:5]}")
        self.store, self.seq_len, self.seed, self.length = str(store), int(seq_len), int(seed), int(length)
        self.extras, self.transitions = tuple(extras), tuple(transitions)
        if not set(self.transitions) <= set(self.extras) or (action_dim > 0) != ("actions" in self.transitions):
            raise AssertionError(f"transitions {self.transitions} must be extras {self.extras}, and actions "
                                 f"among them exactly when action_dim ({action_dim}) > 0")
        if action_dim and len(action_names) != action_dim:
            raise SVGError(f"{len(action_names)} action names {action_names} for {action_dim} action values: "
                           f"give one name per value")
        self.action_dim, self.action_names = int(action_dim), tuple(action_names)
        self.lengths = np.array([v["length"] for v in videos], dtype=np.int64)
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
            rows = self.seq_len - 1 if key in self.transitions else self.seq_len
            item[key] = torch.from_numpy(np.array(arrays[key][first:first + rows], dtype=np.float32))
        return item

    def action_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std, each shape = (action_dim,) float32, of the actions of this dataset's videos
        (std floored at 1e-6); empty arrays without actions."""
        if not self.action_dim:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        actions = self._open()["actions"]
        rows = np.concatenate([actions[s:s + n - 1] for s, n in zip(self.starts, self.lengths, strict=True)])
        rows = rows.astype(np.float64)  # (n_steps, A)
        return rows.mean(axis=0).astype(np.float32), np.maximum(rows.std(axis=0), 1e-6).astype(np.float32)


def open_store_dataset(store: str | os.PathLike, *, split: str | None, seq_len: int, seed: int, image_size: int,
                       channels: int, dataset: str | None = None, short: str = "skip",
                       names: Collection[str] | None = None, action_names: tuple[str, ...] | None = None,
                       ) -> ClipDataset:
    """A ClipDataset over the videos of `split` (None: all) in a store, checked against the model.

    names, when given, keeps only those videos. A store whose index lists "actions" among its
    "transitions" gives items with actions, named by action_names (default: the index's
    "action_names").

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
    videos = [v for v in index["videos"] if (split is None or v["split"] == split)
              and (names is None or v["name"] in names)]
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
    extras, transitions = index.get("extras", {}), tuple(index.get("transitions", ()))
    action_dim = int(extras["actions"]) if "actions" in transitions else 0
    if action_names is None:
        action_names = tuple(index.get("action_names", ()))
    return ClipDataset(Path(store), kept, seq_len, seed, extras=tuple(extras), transitions=transitions,
                       action_dim=action_dim, action_names=tuple(action_names) if action_dim else ())


def _describe(channels: int) -> str:
    return {1: "grayscale (1 channel)", 3: "RGB (3 channels)"}.get(channels, f"{channels}-channel")
