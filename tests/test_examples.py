"""examples/: the planning loop runs on an exported bundle and really picks the best sample."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

from svg_runtime import Predictor

EXAMPLE = REPO_ROOT / "examples" / "planning_loop.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("planning_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str) -> dict:
    result = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _eps_of_steps(rng: np.random.Generator, n_steps: int, n: int, z: int) -> np.ndarray:
    """What p.step(state, rng=rng) draws over n_steps steps, as sample()'s eps (1, n, n_steps, z)."""
    return np.stack([rng.standard_normal((n, z), dtype=np.float32) for _ in range(n_steps)], axis=1)[None]


def _mse(frames: np.ndarray, goal: np.ndarray) -> np.ndarray:
    return ((frames.astype(np.float64) - goal) ** 2).mean(axis=(-3, -2, -1))


def test_planning_loop_picks_the_best_sample(lp, example):
    n, horizon, seed = 100, 5, 3
    result = _run("--bundle", str(lp.path), "--samples", str(n), "--horizon", str(horizon), "--seed", str(seed),
                  "--threads", "1")
    scores = np.array(result["scores"])
    assert scores.shape == (n,) and result["best"] == int(np.argmin(scores)) and result["score"] == scores.min()
    assert result["ms_per_step"] > 0 and scores.std() > 0  # the samples differ

    # recompute every score with sample() and the eps the example's p.step calls drew
    p = Predictor.load(lp.path, threads=1)
    context, goal = example.make_scene(p.spec.frame_shape, n_context=5, horizon=horizon)
    state = p.observe(context)
    rng = np.random.default_rng(seed)
    flat = _eps_of_steps(rng, horizon, n, p.spec.z_dim)
    want = _mse(p.sample(state, n_samples=n, horizon=horizon, eps=flat).frames[0, :, -1], goal)
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-7)

    # the tree: each re-roll keeps the first `split` steps' eps and draws the rest anew
    tree, split = result["tree"], result["tree"]["split"]
    leaves = [want]
    for _ in range(tree["branches"]):
        eps = np.concatenate([flat[:, :, :split], _eps_of_steps(rng, horizon - split, n, p.spec.z_dim)], axis=2)
        leaves.append(_mse(p.sample(state, n_samples=n, horizon=horizon, eps=eps).frames[0, :, -1], goal))
    leaves = np.stack(leaves)
    np.testing.assert_allclose(tree["score"], leaves.min(), rtol=1e-4)
    assert leaves[tree["best_branch"], tree["best_sample"]] == leaves.min()
    assert tree["score"] <= result["score"]


def test_planning_loop_min_score_and_context_files(lp, example, tmp_path):
    p = Predictor.load(lp.path, threads=1)
    context, goal = example.make_scene(p.spec.frame_shape, n_context=3, horizon=4)
    got = example.plan(p, context, goal, n_samples=6, horizon=4, seed=1, mode="min", branches=0)
    eps = _eps_of_steps(np.random.default_rng(1), 4, 6, p.spec.z_dim)
    want = _mse(p.sample(p.observe(context), n_samples=6, horizon=4, eps=eps).frames[0], goal).min(axis=1)
    np.testing.assert_allclose(got["scores"], want, rtol=1e-4)
    assert got["tree"]["best_branch"] == 0 and got["tree"]["score"] == got["score"]

    np.save(tmp_path / "ctx.npy", (context[0, :, 0] * 255).astype(np.uint8))  # (T, H, W) uint8
    np.save(tmp_path / "goal.npy", (goal * 255).astype(np.uint8))  # (1, H, W): one frame
    result = _run("--bundle", str(lp.path), "--context", str(tmp_path / "ctx.npy"), "--goal",
                  str(tmp_path / "goal.npy"), "--samples", "4", "--horizon", "3", "--threads", "1")
    assert len(result["scores"]) == 4 and result["best"] == int(np.argmin(result["scores"]))
