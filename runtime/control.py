"""`svg control` as a library call: the planner drives the Push-T simulator in closed loop.

    report = run_control(ControlOptions(bundle="bundles/pusht", out="control", task="reach", episodes=20))

Every control step: the planner observes the rendered frame (and the action that led to it),
imagines the futures of its candidate action sequences, and returns the first action, which the
simulator executes. The same episodes (seeds, starts and goals) are also run with random actions
and with a do-nothing policy (the agent's target is where it is) as baselines.

Tasks. `reach`: bring the agent to a goal position shown as a goal image (the start's frame with
the agent drawn at the goal), drawn uniformly in the workspace at least 100 units from the start;
success: the agent's centre within 20 units of it after max_steps control steps. `push`: the
environment's own task, the T block to its target pose (goal image: the block drawn there);
success by its coverage rule. Episodes always run max_steps steps, for every policy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svg_runtime.atomic import atomic_write_text
from svg_runtime.errors import SVGRuntimeError
from svg_runtime.planning import GoalImageCost, Planner, PlannerOptions
from svg_runtime.predictor import Predictor

log = logging.getLogger("svg")
TASKS = ("reach", "push")
COSTS = ("pixels", "agent")
POLICIES = ("planner", "random", "none")
REACH_MIN_START_DISTANCE = 100.0
REACH_SUCCESS_RADIUS = 20.0
GOAL_MARGIN = 30.0  # goals stay this far inside the workspace's walls


@dataclass(frozen=True)
class ControlOptions:
    """What `svg control` does; `validate` runs before any work."""

    bundle: str | Path
    out: Path
    task: str = "reach"
    episodes: int = 10
    max_steps: int = 50
    planner: str = "mppi"
    n_sequences: int = 100
    horizon: int = 5
    n_samples: int = 1
    iterations: int | None = None
    noise_std: float = 0.1
    cost: str = "pixels"  # pixels: blurred distance to the goal image; agent: agent's seen position
    blur: float = 2.0
    seed: int = 0
    baselines: bool = True
    gifs: bool = True
    threads: int | None = None

    def validate(self) -> None:
        if self.task not in TASKS:
            raise SVGRuntimeError(f"unknown task {self.task!r}: choose {' or '.join(TASKS)}")
        if self.cost not in COSTS:
            raise SVGRuntimeError(f"unknown cost {self.cost!r}: choose {' or '.join(COSTS)}")
        for name in ("episodes", "max_steps"):
            if getattr(self, name) < 1:
                raise SVGRuntimeError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise SVGRuntimeError(f"--out {self.out} is a file: give a directory for results.json and the GIFs")

    def planner_options(self) -> PlannerOptions:
        return PlannerOptions(low=(0.0, 0.0), high=(512.0, 512.0), optimizer=self.planner,
                              n_sequences=self.n_sequences, horizon=self.horizon, n_samples=self.n_samples,
                              iterations=self.iterations, noise_std=self.noise_std, seed=self.seed)


@dataclass
class Episode:
    """One episode of one policy: its seed, goal, distances, success and planning time."""

    policy: str
    index: int
    seed: int
    goal: list[float]
    start_distance: float
    final_distance: float
    success: bool
    steps: int
    plan_ms: list[float] = field(default_factory=list)


def run_control(opts: ControlOptions) -> dict[str, Any]:
    """Run every episode with the planner and the baselines; write results.json (and GIFs)."""
    from svg_runtime.pusht import PushTSim

    opts.validate()
    predictor = Predictor.load(opts.bundle, threads=opts.threads)
    if predictor.spec.frame_shape != (3, 64, 64) or predictor.spec.action_dim != 2:
        raise SVGRuntimeError(f"{opts.bundle} is not a Push-T model (64x64 RGB frames, 2-D actions): train one "
                              "with `svg data pusht` and `svg train --dataset pusht:DIR`")
    planner = Planner(predictor, _cost(opts, np.zeros((3, 64, 64), np.float32)), opts.planner_options())
    sim, out = PushTSim(), Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    policies = POLICIES if opts.baselines else POLICIES[:1]
    episodes: list[Episode] = []
    for i in range(opts.episodes):
        for policy in policies:
            episodes.append(_episode(sim, planner, opts, policy, i, out))
            log.info("%s", _describe(episodes[-1]))
    sim.close()
    results = {"options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
               "summary": summarize(episodes), "episodes": [asdict(e) for e in episodes]}
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    return results


def _episode(sim: Any, planner: Planner, opts: ControlOptions, policy: str, index: int, out: Path) -> Episode:
    seed = opts.seed * 100_003 + index
    rng = np.random.default_rng([opts.seed, index, POLICIES.index(policy)])
    frame, goal_frame, goal = _setup(sim, opts.task, seed)
    start = _distance(sim, opts.task, goal)
    if policy == "planner":
        planner.cost = _cost(opts, goal_frame)
        planner.reset(initial_action=sim.agent_pos, seed=seed)
    shown, plan_ms = [], []
    for _ in range(opts.max_steps):
        if policy == "planner":
            action = planner.act(frame)
            plan_ms.append(planner.last.ms)
            if opts.gifs:
                shown.append(_panel(frame, goal_frame, planner.last.frames[0]))
        elif policy == "random":
            action = rng.uniform(0.0, 512.0, 2)
        else:
            action = sim.agent_pos.copy()
        frame = sim.step(action)
    final = _distance(sim, opts.task, goal)
    success = final < REACH_SUCCESS_RADIUS if opts.task == "reach" else bool(sim.success)
    if shown:
        from svg_runtime.media import save_video

        shown.append(_panel(frame, goal_frame, np.ones_like(planner.last.frames[0])))  # the end: no plan
        save_video(out / f"episode_{index:03d}.gif", np.stack(shown), fps=5)
    return Episode(policy, index, seed, [float(v) for v in np.ravel(goal)], round(start, 2), round(final, 2),
                   bool(success), opts.max_steps, [round(ms, 2) for ms in plan_ms])


def _setup(sim: Any, task: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first frame, goal frame, goal): the reach goal position or the push goal pose."""
    frame = sim.reset(seed=seed)
    if task == "push":
        goal = np.array(sim._u.goal_pose, dtype=np.float64)  # (x, y, angle)
        state = np.concatenate([sim.agent_pos, sim.block_pose])
        goal_frame = sim.reset(seed=seed, state=np.concatenate([sim.agent_pos, goal]))
        frame = sim.reset(seed=seed, state=state)
        return frame, goal_frame, goal
    rng = np.random.default_rng(seed)
    while True:
        goal = rng.uniform(GOAL_MARGIN, 512.0 - GOAL_MARGIN, 2)
        if np.linalg.norm(goal - sim.agent_pos) >= REACH_MIN_START_DISTANCE:
            return frame, sim.render_with_agent_at(goal), goal


def _distance(sim: Any, task: str, goal: np.ndarray) -> float:
    if task == "reach":
        return float(np.linalg.norm(sim.agent_pos - goal))
    return float(np.linalg.norm(sim.block_pose[:2] - goal[:2]))


def _cost(opts: ControlOptions, goal_frame: np.ndarray) -> Any:
    goal = np.asarray(goal_frame, np.float32)
    if goal.shape == (64, 64, 3):
        goal = np.moveaxis(goal, -1, 0) / 255.0
    if opts.cost == "pixels":
        return GoalImageCost(goal, per_step=True, blur=opts.blur)
    return AgentDistanceCost(goal)


class AgentDistanceCost:
    """Distance (workspace units) between the agent seen in predicted frames and in the goal image,
    averaged over the steps: the agent is found by its colour (svg_runtime.pusht)."""

    def __init__(self, goal: np.ndarray):
        from svg_runtime.pusht import agent_position_from_frame

        self._find = agent_position_from_frame
        self.goal = self._find(_to_uint8(goal[None]))[0]

    def __call__(self, frames: np.ndarray, actions: np.ndarray) -> np.ndarray:
        seen = self._find(_to_uint8(frames))  # (M, H, 2), NaN where the agent fades out
        dist = np.linalg.norm(seen - self.goal, axis=-1)
        return np.nan_to_num(dist, nan=512.0).mean(axis=1)


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    """(..., 3, h, w) in [0, 1] -> (..., h, w, 3) uint8."""
    return (np.clip(np.moveaxis(frames, -3, -1), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _panel(frame: np.ndarray, goal: np.ndarray, future: np.ndarray) -> np.ndarray:
    """One GIF frame: real frame | goal | predicted frames of the chosen plan (first sample)."""
    tiles = [np.asarray(frame), _hwc(goal), *[_hwc(f) for f in future]]
    pad = np.full((64, 2, 3), 255, np.uint8)
    row = np.concatenate([np.concatenate([t, pad], axis=1) for t in tiles], axis=1)
    return np.kron(row, np.ones((3, 3, 1), np.uint8))


def _hwc(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image if image.shape[-1] == 3 else np.moveaxis(image, 0, -1)
    return _to_uint8(image)


def summarize(episodes: list[Episode]) -> dict[str, Any]:
    """Per policy: success rate, mean final distance, planning ms (mean, p50, p95)."""
    out = {}
    for policy in dict.fromkeys(e.policy for e in episodes):
        eps = [e for e in episodes if e.policy == policy]
        ms = [m for e in eps for m in e.plan_ms]
        out[policy] = {"episodes": len(eps), "success_rate": float(np.mean([e.success for e in eps])),
                       "mean_final_distance": float(np.mean([e.final_distance for e in eps])),
                       "mean_start_distance": float(np.mean([e.start_distance for e in eps]))}
        if ms:
            out[policy].update(plan_ms_mean=float(np.mean(ms)), plan_ms_p50=float(np.percentile(ms, 50)),
                               plan_ms_p95=float(np.percentile(ms, 95)))
    return out


def _describe(e: Episode) -> str:
    ms = f", {np.mean(e.plan_ms):.0f} ms/plan" if e.plan_ms else ""
    return (f"episode {e.index} {e.policy}: distance {e.start_distance:.0f} -> {e.final_distance:.0f}, "
            f"{'success' if e.success else 'failure'}{ms}")
