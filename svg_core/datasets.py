"""Which dataset a run trains on: one factory from the run's config to a map-style Dataset.

Names: "smmnist" (generated), "kth" / "bair" (converted by `svg data kth|bair`; "kth:DIR" names the
directory, else $SVG_DATA_DIR/kth), "folder:PATH" (any videos, decoded once into a cache),
"pusht:DIR" (episodes recorded by `svg data pusht`, with actions).

Every dataset item i is a pure function of (seed, i) and holds "frames" (T, C, H, W) float32 in
[0, 1]; that is what makes training resumable exactly. Datasets with actions (pusht, folders of
.npz files with "actions") add "actions" (T-1, A) float32 in the user's units, row t taken between
frames t and t+1, and describe them with `action_dim`, `action_names` and `action_stats()`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from svg_core.config import RunConfig, with_overrides
from svg_core.errors import SVGError

log = logging.getLogger("svg")

SPLITS = ("train", "test", "sample")
DATASETS = ("smmnist", "kth", "bair", "folder", "pusht")
# Offset between the training stream's seed and the held-out streams' seeds.
_HELD_OUT_SEED = 1_000_003
# Share of a Push-T recording's episodes (its last ones) held out for the test and sample splits.
PUSHT_HELD_OUT = 0.1


def build_dataset(cfg: RunConfig, split: str = "train") -> Dataset:
    """The dataset named by cfg.train.dataset, for sequences of n_past + n_future frames.

    split "train" draws training sequences; "test" and "sample" draw held-out ones (other digits
    where the source has a test split, another seed).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    family, path = parse_dataset(cfg.train.dataset)
    if family == "smmnist":
        return _smmnist(cfg, split)
    if family == "pusht":
        return _pusht(cfg, split, Path(path).expanduser())
    return _clips(cfg, split, family, path)


def dataset_actions(cfg: RunConfig) -> tuple[int, tuple[str, ...], np.ndarray, np.ndarray]:
    """(action_dim, action_names, mean (A,), std (A,)) of the run's training data; (0, (), [], []) without
    actions. The statistics cover the training split's actions, std floored at 1e-6 (float32)."""
    dataset = build_dataset(cfg, "train")
    action_dim = int(getattr(dataset, "action_dim", 0))
    if not action_dim:
        return 0, (), np.zeros(0, np.float32), np.zeros(0, np.float32)
    mean, std = dataset.action_stats()
    return action_dim, tuple(dataset.action_names), mean, std


def parse_dataset(name: str) -> tuple[str, str | None]:
    """("kth", None) for "kth", ("folder", PATH) for "folder:PATH"; SVGError for unknown names."""
    family, sep, path = name.partition(":")
    if family not in DATASETS:
        raise SVGError(f"unknown dataset {name!r}: choose smmnist, kth, bair (converted with `svg data kth|bair`, "
                       f"then kth:DIR or --data-dir DIR), folder:PATH (a folder of your videos) or pusht:DIR "
                       f"(recorded with `svg data pusht`)")
    if family == "smmnist" and sep:
        raise SVGError(f"dataset {name!r}: smmnist takes no path (its digits come from --digits)")
    if family == "folder" and not path:
        raise SVGError("dataset folder needs a path: --dataset folder:PATH (or --data-dir PATH)")
    if family == "pusht" and not path:
        raise SVGError("dataset pusht needs the recording's folder: record one with `svg data pusht --out DIR`, "
                       "then pass --dataset pusht:DIR")
    return family, path or None


def store_dir(family: str, path: str | None) -> Path:
    """The converted KTH/BAIR directory: the given path, else $SVG_DATA_DIR/<family>."""
    if path:
        return Path(path).expanduser()
    base = os.environ.get("SVG_DATA_DIR")
    if not base:
        raise SVGError(f"where is the converted {family.upper()} data? Convert it with `svg data {family} RAW "
                       f"--out DIR`, then pass --data-dir DIR (or --dataset {family}:DIR, or set SVG_DATA_DIR "
                       f"to the folder holding {family}/)")
    return Path(base).expanduser() / family


def data_channels(cfg: RunConfig) -> int | None:
    """Channels of the run's data (1 gray, 3 RGB); None when the source makes any (SM-MNIST).

    A folder dataset is decoded into its cache here if it was not yet.
    """
    from svg_core.data.clips import load_index
    from svg_core.data.folder import folder_channels

    family, path = parse_dataset(cfg.train.dataset)
    if family == "smmnist":
        return None
    if family in ("folder", "pusht"):
        return folder_channels(path, cfg.model.image_size)
    return int(load_index(store_dir(family, path))["channels"])


def fit_to_data(cfg: RunConfig, use_actions: bool = True) -> RunConfig:
    """cfg with the model's channels set to the data's (gray 1, RGB 3; unchanged for SM-MNIST), and
    its actions (dimension, names, normalisation statistics) set to the data's (none with
    use_actions=False: an unconditional model of the same videos)."""
    channels = data_channels(cfg)
    if channels is not None and channels != cfg.model.channels:
        log.info("the %s data have %d channel(s): model channels %d -> %d", cfg.train.dataset, channels,
                 cfg.model.channels, channels)
        cfg = with_overrides(cfg, channels=channels)
    if parse_dataset(cfg.train.dataset)[0] == "smmnist":
        return cfg
    if not use_actions:
        return with_overrides(cfg, action_dim=0, action_names=[], action_mean=[], action_std=[])
    action_dim, names, mean, std = dataset_actions(cfg)
    if action_dim != cfg.model.action_dim or (action_dim and not cfg.model.action_mean):
        log.info("the %s data have %d-dimensional actions: model action_dim %d -> %d", cfg.train.dataset,
                 action_dim, cfg.model.action_dim, action_dim)
        cfg = with_overrides(cfg, action_dim=action_dim, action_names=list(names),
                             action_mean=[float(v) for v in mean], action_std=[float(v) for v in std])
    return cfg


def _clips(cfg: RunConfig, split: str, family: str, path: str | None) -> Dataset:
    from svg_core.data.clip_dataset import open_store_dataset
    from svg_core.data.folder import prepare_folder

    m, tc = cfg.model, cfg.train
    seed = tc.seed if split == "train" else tc.seed + _HELD_OUT_SEED
    if family == "folder":
        # A folder has no held-out videos: held-out splits are other clips of the same videos.
        store = prepare_folder(path, m.image_size)
        return open_store_dataset(store, split=None, seq_len=tc.seq_len, seed=seed, image_size=m.image_size,
                                  channels=m.channels, short="error")
    return open_store_dataset(store_dir(family, path), split="train" if split == "train" else "test",
                              seq_len=tc.seq_len, seed=seed, image_size=m.image_size, channels=m.channels,
                              dataset=family)


def _smmnist(cfg: RunConfig, split: str) -> Dataset:
    from svg_core.data.digits import load_digits
    from svg_core.data.smmnist import SMMNISTConfig
    from svg_core.data.torch_dataset import SMMNISTDataset

    m, tc = cfg.model, cfg.train
    data_cfg = SMMNISTConfig(image_size=m.image_size, num_digits=tc.num_digits, seq_len=tc.seq_len,
                             channels=m.channels)
    digits = load_digits(tc.digits, split="train" if split == "train" else "test")
    seed = tc.seed if split == "train" else tc.seed + _HELD_OUT_SEED
    return SMMNISTDataset(digits, data_cfg, seed=seed)


def _pusht(cfg: RunConfig, split: str, root: Path) -> Dataset:
    """Random windows of recorded Push-T episodes; the last PUSHT_HELD_OUT of them are held out."""
    from svg_core.data.clip_dataset import open_store_dataset
    from svg_core.data.clips import load_index
    from svg_core.data.folder import prepare_folder

    meta = read_pusht_meta(root)
    m, tc = cfg.model, cfg.train
    store = prepare_folder(root, m.image_size)
    names = sorted(v["name"] for v in load_index(store)["videos"])
    n_held_out = max(1, round(len(names) * PUSHT_HELD_OUT)) if len(names) > 1 else 0
    if split == "train":
        chosen, seed = names[:len(names) - n_held_out], tc.seed
    else:  # one episode only: held-out splits are other windows of it
        chosen, seed = names[len(names) - n_held_out:] or names, tc.seed + _HELD_OUT_SEED
    return open_store_dataset(store, split=None, seq_len=tc.seq_len, seed=seed, image_size=m.image_size,
                              channels=m.channels, short="error", names=set(chosen),
                              action_names=tuple(meta["action_names"]))


def read_pusht_meta(root: Path) -> dict[str, Any]:
    """meta.json of a Push-T recording; SVGError saying how to record one when it is not."""
    path = root / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise SVGError(f"{root} is not a Push-T recording (no meta.json): record one with "
                       f"`svg data pusht --out {root}`") from e
    except (OSError, json.JSONDecodeError) as e:
        raise SVGError(f"cannot read {path} ({e}): record the episodes again with `svg data pusht`") from e
    if meta.get("format") != "svg-pusht-episodes" or not meta.get("action_names"):
        raise SVGError(f"{path} does not describe a Push-T recording: record one with `svg data pusht --out DIR`")
    return meta
