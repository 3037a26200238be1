"""pytest-benchmark: one planning call (MPPI, 200 sequences x horizon 10, 64x64, goal-image cost) of
the same planner driving the runtime (fp32 and int8 bundles) and the PyTorch model, for the
pusht-small model size (RGB, width 8, 2-D actions) and the paper's width (64). Weights are
untrained (timing only). Not part of `make test`; `make bench` runs it. The same as one table with
ratios: `svg bench BUNDLE INT8_BUNDLE --plan`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svg_bench.plan import TorchPredictor
from svg_core.checkpoint import save_checkpoint
from svg_core.config import ModelConfig, RunConfig, preset
from svg_core.model import SVG
from svg_runtime import Predictor
from svg_runtime.planning import GoalImageCost, Planner, PlannerOptions

ACTIONS = dict(action_dim=2, action_mean=(256.0, 256.0), action_std=(150.0, 150.0))
MODELS = {
    "pusht-small": preset("pusht-small").model.__dict__ | ACTIONS,
    "paper-width": dict(channels=3, **ACTIONS),
}


@pytest.fixture(scope="session", params=list(MODELS))
def predictors(request, tmp_path_factory):
    from svg_export.bundle import ExportOptions, export_bundle

    root = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    cfg = ModelConfig(**MODELS[request.param])
    model = SVG(cfg)
    save_checkpoint(root / "run", model, RunConfig(model=cfg), step=0)
    out = {"torch": TorchPredictor(model)}
    for name, int8 in (("ort-fp32", False), ("ort-int8", True)):
        export_bundle(ExportOptions(checkpoint=root / "run", out=root / name, int8=int8))
        out[name] = Predictor.load(root / name)
    return request.param, out


@pytest.mark.parametrize("backend", ["torch", "ort-fp32", "ort-int8"])
def test_planning_call(benchmark, predictors, backend) -> None:
    name, found = predictors
    p = found[backend]
    rng = np.random.default_rng(0)
    planner = Planner(p, GoalImageCost(rng.random((3, 64, 64), dtype=np.float32), blur=8.0, pool=2),
                      PlannerOptions(low=(0.0, 0.0), high=(512.0, 512.0)))  # VP2's MPPI: 200 x 10
    planner.observe(rng.random((3, 64, 64), dtype=np.float32))
    benchmark.group = f"planning call {name}"
    benchmark.pedantic(planner.plan, rounds=3, warmup_rounds=1)
