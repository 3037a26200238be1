"""Datasets: MNIST digits and the Stochastic Moving MNIST generator (numpy; torch only lazily)."""

from __future__ import annotations

from typing import Any

from svg_core.data.digits import download_mnist, load_digits, load_idx_dir, read_idx_images
from svg_core.data.smmnist import (
    SMMNISTConfig,
    build_smmnist_test_set,
    config_of,
    generate_batch,
    generate_sequence,
    load_npz,
    make_test_set,
    resize_digits,
    sequence_rng,
    simulate_trajectories,
    velocity_distribution,
)
from svg_runtime.atomic import save_npz  # the one .npz writer, re-exported here for data users

__all__ = [
    "SMMNISTConfig",
    "SMMNISTDataset",
    "build_smmnist_test_set",
    "config_of",
    "download_mnist",
    "generate_batch",
    "generate_sequence",
    "load_digits",
    "load_idx_dir",
    "load_npz",
    "make_test_set",
    "read_idx_images",
    "resize_digits",
    "save_npz",
    "sequence_rng",
    "simulate_trajectories",
    "velocity_distribution",
]


def __getattr__(name: str) -> Any:
    # The torch wrapper is imported on first use so that `import svg_core.data` never needs torch.
    if name == "SMMNISTDataset":
        from svg_core.data.torch_dataset import SMMNISTDataset

        return SMMNISTDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
