"""The planning benchmark: the same planner on PyTorch and on the runtime makes the same plan, and
`svg bench --plan` reports one row per backend with its ratio to PyTorch."""

from __future__ import annotations

import numpy as np
from bundle_fixtures import get_bundle
from typer.testing import CliRunner

from svg_bench.plan import PlanBenchOptions, TorchPredictor, run_plan_bench
from svg_cli.app import app
from svg_runtime import Predictor
from svg_runtime.planning import GoalImageCost, Planner, PlannerOptions


def test_the_planner_makes_the_same_plan_on_pytorch_and_the_runtime(tmp_path_factory) -> None:
    b = get_bundle(tmp_path_factory, "lp_act")
    rng = np.random.default_rng(0)
    frames = rng.random((2, 1, 64, 64), dtype=np.float32)
    goal = rng.random((1, 64, 64), dtype=np.float32)
    plans = []
    for predictor in (TorchPredictor(b.model), Predictor.load(b.path, threads=1)):
        planner = Planner(predictor, GoalImageCost(goal, blur=4.0), PlannerOptions(
            low=(0.0, 0.0), high=(512.0, 512.0), n_sequences=24, horizon=3, n_samples=2, seed=3))
        actions = [planner.act(frames[0]), planner.act(frames[1])]
        plans.append((np.stack(actions), planner.last.costs))
    np.testing.assert_allclose(plans[0][0], plans[1][0], atol=0.05)  # 1e-4 of the action range
    np.testing.assert_allclose(plans[0][1], plans[1][1], rtol=1e-3, atol=1e-6)


def test_plan_bench_rows_and_cli(tmp_path_factory, tmp_path) -> None:
    b = get_bundle(tmp_path_factory, "lp_act")
    rows = run_plan_bench(PlanBenchOptions(bundles=(b.path,), n_sequences=8, horizon=2, calls=1, threads=1))
    assert [r["backend"] for r in rows] == ["torch", "ort-fp32"]
    assert all(r["ms"] > 0 for r in rows) and rows[0]["vs_torch"] == 1.0
    np.testing.assert_allclose(rows[1]["vs_torch"], rows[0]["ms"] / rows[1]["ms"])
    out = CliRunner().invoke(app, ["bench", str(b.path), "--plan", "--sequences", "8", "--horizon", "2",
                                   "--steps", "1", "--threads", "1", "--json", str(tmp_path / "p.json")])
    assert out.exit_code == 0, out.output
    assert "ort-fp32" in out.output and (tmp_path / "p.json").is_file()
    plain = get_bundle(tmp_path_factory, "lp")
    refused = CliRunner().invoke(app, ["bench", str(plain.path), "--plan"])
    assert refused.exit_code == 1 and "trained without actions" in refused.output
