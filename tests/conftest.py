"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    """The shared folder of test data: $SVG_SHARED, else <repo>/../shared."""
    env = os.environ.get("SVG_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """A local MNIST idx directory (the 10,000 t10k digits); skips the test when absent."""
    path = shared_root() / "data" / "mnist"
    if not (path / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no MNIST test digits at {path} (set SVG_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def test_digits(request) -> np.ndarray:
    """MNIST test digits: the shared idx copy when present, else the shipped 5,000."""
    from svg_core.data.digits import load_digits

    try:
        return load_digits(request.getfixturevalue("mnist_dir"), split="test")
    except pytest.skip.Exception:
        return load_digits("bundled", split="test")
