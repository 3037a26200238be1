"""`svg control`: the planner in closed loop on the Push-T simulator, with the baselines, on a tiny
(untrained) bundle: the loop's mechanics, its outputs and its errors, not the success rate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bundle_fixtures import get_bundle
from typer.testing import CliRunner

from svg_cli.app import app

pytest.importorskip("gym_pusht")


@pytest.fixture(scope="module")
def pusht_bundle(tmp_path_factory):
    return get_bundle(tmp_path_factory, "pusht_act")


@pytest.mark.parametrize("task, planner", [("reach", "mppi"), ("push", "cem")])
def test_control_runs_planner_and_baselines_on_the_same_episodes(pusht_bundle, tmp_path, task, planner) -> None:
    out = tmp_path / "control"
    result = CliRunner().invoke(app, ["control", str(pusht_bundle.path), "--env", "pusht", "--task", task,
                                      "--episodes", "2", "--max-steps", "3", "--planner", planner,
                                      "--sequences", "40", "--horizon", "2", "--samples", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "planner  success" in result.output and "random" in result.output and "none" in result.output
    results = json.loads((out / "results.json").read_text())
    by_policy: dict[str, list] = {}
    for e in results["episodes"]:
        by_policy.setdefault(e["policy"], []).append(e)
    assert set(by_policy) == {"planner", "random", "none"}
    for eps in by_policy.values():  # the same seeds and goals for every policy
        assert [e["seed"] for e in eps] == [e["seed"] for e in by_policy["planner"]]
        assert [e["goal"] for e in eps] == [e["goal"] for e in by_policy["planner"]]
        assert all(e["steps"] == 3 for e in eps)
    assert all(len(e["plan_ms"]) == 3 and min(e["plan_ms"]) > 0 for e in by_policy["planner"])
    if task == "reach":
        assert all(e["start_distance"] >= 100 for e in by_policy["planner"])
        none = by_policy["none"]  # doing nothing leaves the agent where it started
        assert all(abs(e["final_distance"] - e["start_distance"]) < 1.0 for e in none)
    gif = out / "episode_000.gif"
    assert gif.is_file()
    import imageio.v3 as iio

    frames = iio.imread(gif)
    assert frames.shape[0] == 4 and frames.shape[2] == 3 * (4 * 66)  # real | goal | 2 predicted, x3


def test_control_refuses_a_model_that_is_not_pusht(tmp_path_factory, tmp_path) -> None:
    bundle = get_bundle(tmp_path_factory, "lp_act")  # 1 channel
    result = CliRunner().invoke(app, ["control", str(bundle.path), "--episodes", "1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "is not a Push-T model" in result.output
    bad = CliRunner().invoke(app, ["control", str(bundle.path), "--task", "fly", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 1 and "unknown task 'fly'" in bad.output


def test_agent_distance_cost_ranks_futures_by_where_the_agent_is() -> None:
    from svg_runtime.control import AgentDistanceCost
    from svg_runtime.pusht import PushTSim

    sim = PushTSim()
    sim.reset(seed=0)
    goal = np.moveaxis(sim.render_with_agent_at(np.array([300.0, 300.0])), -1, 0) / 255.0
    futures = np.stack([np.moveaxis(sim.render_with_agent_at(np.array(p)), -1, 0) / 255.0
                        for p in ([300.0, 300.0], [350.0, 300.0], [100.0, 100.0])])[:, None]  # (3, H=1, ...)
    costs = AgentDistanceCost(goal)(futures.astype(np.float32), None)
    sim.close()
    assert costs[0] < 2 and abs(costs[1] - 50) < 3 and costs[2] > 250
