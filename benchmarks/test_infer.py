"""pytest-benchmark: SVG-LP DCGAN-64 at the paper's width (64) sampling on every backend.

One sampling step and a full 5 -> 20 rollout at batch 1, 16 and 100, and 100 samples of one
video, for PyTorch eager (inference_mode), onnxruntime's fused step (the runtime's Predictor),
the per-cell graphs chained with session.run, the int8 bundle (`svg export --int8`), and, where
available, onnxruntime CUDA and TensorRT (skipped otherwise). Weights are untrained (timing only).

Not part of `make test`; `make bench` runs it (about 4 minutes on a 2-core CPU, exports included):
`python -m pytest benchmarks/test_infer.py --benchmark-only --benchmark-group-by=group`.
The same comparison as one table, with FLOPs and the matmul peak: `svg bench BUNDLE`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svg_bench.runners import CellRunner, FusedRunner, Runner, TorchRunner
from svg_core.checkpoint import save_checkpoint
from svg_core.config import ModelConfig, RunConfig
from svg_core.model import SVG

BATCHES = (1, 16, 100)
BACKENDS = ("torch", "ort", "ort-cells", "ort-int8", "ort-cuda", "trt")
CONTEXT, HORIZON, Z_DIM = 5, 20, 10
STEP_ROUNDS = {1: 50, 16: 10, 100: 5}
ROLLOUT_ROUNDS = {1: 5, 16: 3, 100: 2}


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """A paper-width SVG-LP checkpoint exported as an fp32 and an int8 bundle (~35 s)."""
    from svg_export.bundle import ExportOptions, export_bundle

    root = tmp_path_factory.mktemp("paper")
    torch.manual_seed(0)
    cfg = ModelConfig()  # DCGAN-64, width 64, g 128, z 10, LSTM 256: the paper's SM-MNIST model
    save_checkpoint(root / "run", SVG(cfg), RunConfig(model=cfg), step=0)
    out = {}
    for name, int8 in (("fp32", False), ("int8", True)):
        export_bundle(ExportOptions(checkpoint=root / "run", out=root / name, int8=int8))
        out[name] = root / name
    return root, out


@pytest.fixture(scope="session")
def runners(bundles):
    """One runner per backend; None where this machine lacks it."""
    import onnxruntime as ort

    from svg_core.checkpoint import load_model
    from svg_runtime import Predictor

    root, paths = bundles
    model, _ = load_model(root / "run")
    found: dict[str, Runner | None] = {
        "torch": TorchRunner(model),
        "ort": FusedRunner(Predictor.load(paths["fp32"]), "ort"),
        "ort-cells": CellRunner(paths["fp32"]),
        "ort-int8": FusedRunner(Predictor.load(paths["int8"]), "ort-int8"),
        "ort-cuda": None, "trt": None,
    }
    if "CUDAExecutionProvider" in ort.get_available_providers():
        try:
            found["ort-cuda"] = FusedRunner(Predictor.load(paths["fp32"], device="cuda"), "ort-cuda")
        except Exception:  # the provider is listed but no GPU answers
            pass
    return found


def _runner(runners, backend: str) -> Runner:
    runner = runners[backend]
    if runner is None:
        reason = {"ort-cuda": "no onnxruntime CUDA provider or GPU",
                  "trt": "needs TensorRT, a GPU and `svg export --trt` engines"}[backend]
        pytest.skip(f"{backend}: {reason}")
    return runner


def _inputs(batch: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    context = rng.random((batch, CONTEXT, 1, 64, 64), dtype=np.float32)
    return context, [rng.standard_normal((batch, Z_DIM), dtype=np.float32) for _ in range(HORIZON)]


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_step(benchmark, runners, backend: str, batch: int) -> None:
    runner = _runner(runners, backend)
    context, eps = _inputs(batch)
    runner.start(context)
    benchmark.group = f"step, batch {batch}"
    benchmark.pedantic(runner.step, args=(eps[0],), rounds=STEP_ROUNDS[batch], iterations=1, warmup_rounds=2)
    benchmark.extra_info["frames_per_s"] = batch / benchmark.stats.stats.median


def _rollout(runner: Runner, context: np.ndarray, eps: list[np.ndarray], n_samples: int = 1) -> None:
    runner.start(context, n_samples)
    for t in range(HORIZON):
        runner.step(eps[t])


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_rollout(benchmark, runners, backend: str, batch: int) -> None:
    runner = _runner(runners, backend)
    context, eps = _inputs(batch)
    benchmark.group = f"rollout {CONTEXT} -> {HORIZON}, batch {batch}"
    benchmark.pedantic(_rollout, args=(runner, context, eps), rounds=ROLLOUT_ROUNDS[batch], iterations=1,
                       warmup_rounds=1 if batch < 100 else 0)
    benchmark.extra_info["frames_per_s"] = batch * HORIZON / benchmark.stats.stats.median


@pytest.mark.parametrize("backend", BACKENDS)
def test_100_samples_of_one_video(benchmark, runners, backend: str) -> None:
    runner = _runner(runners, backend)
    context, _ = _inputs(1)
    _, eps = _inputs(100)
    benchmark.group = f"rollout {CONTEXT} -> {HORIZON}, 100 samples of 1 video"
    benchmark.pedantic(_rollout, args=(runner, context, eps, 100), rounds=ROLLOUT_ROUNDS[100], iterations=1)
    benchmark.extra_info["frames_per_s"] = 100 * HORIZON / benchmark.stats.stats.median
