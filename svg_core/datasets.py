"""Which dataset a run trains on: one factory from the run's config to a map-style Dataset.

Every dataset item i is a pure function of (seed, i) and holds "frames" (T, C, H, W) float32 in
[0, 1]; that is what makes training resumable exactly.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from svg_core.config import RunConfig
from svg_core.errors import SVGError

SPLITS = ("train", "test", "sample")
# Offset between the training stream's seed and the held-out streams' seeds.
_HELD_OUT_SEED = 1_000_003


def build_dataset(cfg: RunConfig, split: str = "train") -> Dataset:
    """The dataset named by cfg.train.dataset, for sequences of n_past + n_future frames.

    split "train" draws training sequences; "test" and "sample" draw held-out ones (other digits
    where the source has a test split, another seed).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    name = cfg.train.dataset
    if name == "smmnist":
        return _smmnist(cfg, split)
    raise SVGError(f"unknown dataset {name!r}: choose smmnist")


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
