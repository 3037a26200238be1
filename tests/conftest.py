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


# Tiny exported bundles (tests/bundle_fixtures.py exports each once per process); a module gets its
# own Predictor over them.
@pytest.fixture(scope="module")
def lp(tmp_path_factory):
    """The tiny unconditional SVG-LP bundle."""
    from bundle_fixtures import get_bundle

    return get_bundle(tmp_path_factory, "lp")


@pytest.fixture(scope="module")
def lp_pred(lp):
    from svg_runtime import Predictor

    return Predictor.load(lp.path, threads=1)


@pytest.fixture(scope="module")
def lp_act(tmp_path_factory):
    """The tiny action-conditioned SVG-LP bundle (2-dimensional actions)."""
    from bundle_fixtures import get_bundle

    return get_bundle(tmp_path_factory, "lp_act")


@pytest.fixture(scope="module")
def lp_act_pred(lp_act):
    from svg_runtime import Predictor

    return Predictor.load(lp_act.path, threads=1)
