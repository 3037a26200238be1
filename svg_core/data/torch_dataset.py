"""torch wrapper around the numpy SM-MNIST generator (the numpy part never imports torch)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from svg_core.data.smmnist import (
    SMMNISTConfig,
    generate_batch,
    generate_sequence,
    resize_digits,
    sequence_rng,
)
from svg_core.errors import SVGError

DEFAULT_LENGTH = 10**9


class SMMNISTDataset(Dataset):
    """Map-style SM-MNIST stream: item i is a pure function of (seed, i).

    `__getitem__(i)` -> {"frames": (T, C, H, W) float32 in [0, 1], "positions": (T, D, 2) float32,
    "bounces": (T, D) bool}. For an exactly resumable DataLoader, feed the indices of the steps
    left, e.g. `DataLoader(ds, batch_size=B, sampler=range(step * B, len(ds)))`; `batch()` is the
    same data without a DataLoader.
    """

    def __init__(self, digits: np.ndarray, cfg: SMMNISTConfig | None = None, *, seed: int = 0,
                 length: int = DEFAULT_LENGTH) -> None:
        self.cfg = cfg if cfg is not None else SMMNISTConfig()
        if seed < 0 or length < 1:
            raise SVGError(f"SMMNISTDataset needs seed >= 0 and length >= 1, got seed {seed}, length {length}")
        self.seed, self.length = int(seed), int(length)
        self.digits = resize_digits(digits, self.cfg.digit_size)  # resized once, shared by workers

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"sequence index {index} out of range [0, {self.length})")
        seq = generate_sequence(sequence_rng(self.seed, index), self.digits, self.cfg)
        return {
            "frames": torch.from_numpy(seq["frames"]).float().div_(255.0),
            "positions": torch.from_numpy(seq["positions"]),
            "bounces": torch.from_numpy(seq["bounces"]),
        }

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """Frames of sequences step*B .. (step+1)*B - 1, shape = (B, T, C, H, W) float32 in [0, 1]."""
        data = generate_batch(self.seed, step * batch_size, batch_size, self.digits, self.cfg)
        return torch.from_numpy(data["frames"]).float().div_(255.0)
