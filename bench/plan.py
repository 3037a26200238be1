"""Latency of one planning call: the same MPPI/CEM planner (svg_runtime.planning) driving the
runtime (onnxruntime, fp32 and int8 bundles) and the PyTorch model, on one machine in one run.

A planning call is `optimizer iterations` x one batched rollout of n_sequences x n_samples futures
of `horizon` steps, plus the cost of every predicted frame; the table reports the median ms per
call and the ratio to PyTorch measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svg_core import sampling
from svg_core.checkpoint import build_model, load_checkpoint, resolve
from svg_core.model import SVG
from svg_export.cells import model_spec
from svg_runtime import Predictor
from svg_runtime.errors import SVGRuntimeError
from svg_runtime.manifest import read_manifest
from svg_runtime.planning import GoalImageCost, Planner, PlannerOptions
from svg_runtime.predictor import Rollout


@dataclass(frozen=True)
class PlanBenchOptions:
    """What `svg bench --plan` measures."""

    bundles: tuple[Path, ...]
    n_sequences: int = 200
    horizon: int = 10
    n_samples: int = 1
    optimizer: str = "mppi"
    calls: int = 5
    torch: bool = True
    threads: int | None = None


class TorchPredictor:
    """The Predictor's planning API (observe, observe_frame, sample) over the PyTorch model, so that
    the very same Planner drives PyTorch: the baseline of the benchmark."""

    def __init__(self, model: SVG):
        self.model = model.eval()
        self.spec = model_spec(model)

    def observe(self, context: np.ndarray, actions: np.ndarray | None = None) -> sampling.State:
        with torch.inference_mode():
            return sampling.observe(self.model, torch.from_numpy(np.asarray(context, np.float32)),
                                    None if actions is None else torch.from_numpy(actions))

    def observe_frame(self, state: sampling.State, frame: np.ndarray, action: np.ndarray | None = None) -> None:
        with torch.inference_mode():
            new = sampling.observe_frame(self.model, state, torch.from_numpy(np.asarray(frame, np.float32)),
                                         None if action is None else torch.from_numpy(action))
        state.__dict__.update(new.__dict__)

    def sample(self, state: sampling.State, n_samples: int = 1, horizon: int | None = None, seed: int | None = None,
               eps: np.ndarray | None = None, actions: np.ndarray | None = None, out: Rollout | None = None) -> Rollout:
        b, k, h = actions.shape[:3]
        eps = np.random.default_rng(seed).standard_normal((b, k, n_samples, h, self.spec.latent_dim), dtype=np.float32)
        with torch.inference_mode():
            r = sampling.sample(self.model, state, n_samples, h, torch.from_numpy(eps),
                                actions=torch.from_numpy(np.ascontiguousarray(actions, np.float32)))
        return Rollout(frames=r.frames.numpy(), mu=r.mu.numpy(), sigma=r.sigma.numpy(), eps=eps)


def _time_planner(predictor: Any, opts: PlanBenchOptions, seed: int = 0) -> list[float]:
    spec = predictor.spec
    rng = np.random.default_rng(seed)
    goal = rng.random(spec.frame_shape, dtype=np.float32)
    low, high = _bounds(spec)
    planner = Planner(predictor, GoalImageCost(goal, blur=8.0, pool=2),
                      PlannerOptions(low=low, high=high, optimizer=opts.optimizer, n_sequences=opts.n_sequences,
                                     horizon=opts.horizon, n_samples=opts.n_samples))
    planner.observe(rng.random(spec.frame_shape, dtype=np.float32))
    planner.plan()  # warm-up: sessions, buffers
    times = []
    for _ in range(opts.calls):
        start = time.perf_counter()
        planner.plan()
        times.append(time.perf_counter() - start)
    return times


def _bounds(spec: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """mean +- 2 std of the training actions, or [-1, 1] without statistics."""
    mean = np.asarray(spec.action_mean or (0.0,) * spec.action_dim)
    std = np.asarray(spec.action_std or (0.5,) * spec.action_dim)
    return tuple(map(float, mean - 2 * std)), tuple(map(float, mean + 2 * std))


def run_plan_bench(opts: PlanBenchOptions) -> list[dict[str, Any]]:
    """Median ms per planning call per backend, with its ratio to PyTorch's."""
    if torch.get_num_threads() and opts.threads:
        torch.set_num_threads(opts.threads)
    rows: list[dict[str, Any]] = []
    first = read_manifest(opts.bundles[0])
    if not first["model"].get("action_dim"):
        raise SVGRuntimeError(f"{opts.bundles[0]} was trained without actions: planning needs an action-conditioned bundle")
    if opts.torch:
        ckpt = load_checkpoint(resolve(Path(first["checkpoint"]["path"])))
        times = _time_planner(TorchPredictor(build_model(ckpt)), opts)
        rows.append({"backend": "torch", "ms": 1000 * statistics.median(times)})
    for path in opts.bundles:
        manifest = read_manifest(path)
        label = "ort-int8" if manifest.get("quantization") else f"ort-{manifest['precision']}"
        times = _time_planner(Predictor.load(path, threads=opts.threads), opts)
        rows.append({"backend": label, "bundle": str(path), "ms": 1000 * statistics.median(times)})
    base = rows[0]["ms"] if opts.torch else None
    for row in rows:
        row["vs_torch"] = None if base is None else base / row["ms"]
        row.update(n_sequences=opts.n_sequences, horizon=opts.horizon, n_samples=opts.n_samples,
                   optimizer=opts.optimizer)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'backend':10s} {'ms/call':>9s} {'speed-up vs torch':>18s}"]
    for row in rows:
        ratio = "" if row["vs_torch"] is None else f"{row['vs_torch']:.2f}x"
        lines.append(f"{row['backend']:10s} {row['ms']:9.1f} {ratio:>18s}")
    return "\n".join(lines)
