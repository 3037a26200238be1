"""Receding-horizon planning over predicted futures: MPPI and CEM on an action-conditioned bundle.

    planner = Planner(Predictor.load("bundles/pusht"), GoalImageCost(goal), PlannerOptions(
        low=(0, 0), high=(512, 512)))
    planner.reset()
    while not done:
        action = planner.act(frame)        # observe the real frame, plan, return the first action
        frame = env.step(action)
    planner.last.actions, planner.last.frames, planner.last.cost   # the plan, its futures, its cost

One planning iteration is ONE batched rollout of all M candidate sequences x N samples
(`Predictor.sample(state, actions=(1, M, H, A), n_samples=N)`), written into buffers reused across
calls. MPPI (as in VP2 and PDDM): candidates = the current plan + temporally correlated Gaussian
noise (n_t = beta * u_t + (1 - beta) * n_{t-1}), the plan becomes the average of the candidates
weighted by exp(-(cost - min) / (temperature * (max - min))). CEM: candidates ~ N(mean, std), refit
to the best elite_fraction, `iterations` times. Both clip to the action bounds and warm-start the
next call with the plan shifted by one step. Costs see every sample; the N samples of a sequence
are reduced to one cost by their mean, their worst, or mean + k * std (risk-aware planning).
Needs numpy and the Predictor only: no torch.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from svg_runtime.errors import SVGRuntimeError
from svg_runtime.predictor import Predictor, Rollout, State

OPTIMIZERS = ("mppi", "cem")
RISKS = ("mean", "worst", "mean_std")
# A cost maps predicted frames (M, H, C, h, w) in [0, 1] and actions (M, H, A) to (M,), lower is
# better; a cost with a third parameter also receives the prior's sigma (M, H, z_dim).
Cost = Callable[..., np.ndarray]


@dataclass(frozen=True)
class PlannerOptions:
    """Every figure of the planner. low/high: action bounds in the model's (the user's) units."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    optimizer: str = "mppi"
    n_sequences: int = 200
    horizon: int = 10
    n_samples: int = 1  # futures per candidate sequence
    iterations: int | None = None  # None: 1 for MPPI, 3 for CEM
    temperature: float = 0.05  # MPPI: weights exp(-(cost - min) / (temperature * cost range))
    beta: float = 0.5  # MPPI: correlation of the noise over time (1: white noise)
    noise_std: float = 0.25  # initial std of the candidates, as a fraction of (high - low)
    elite_fraction: float = 0.05  # CEM
    risk: str = "mean"  # how the N samples of a sequence make one cost: mean, worst, mean_std
    risk_k: float = 1.0  # mean_std: mean + risk_k * std
    warm_start: bool = True
    seed: int | None = 0

    def __post_init__(self) -> None:
        low, high = np.asarray(self.low, float), np.asarray(self.high, float)
        if low.ndim != 1 or low.shape != high.shape or not np.all(high > low):
            raise SVGRuntimeError(f"action bounds need low < high, same length: got low={self.low}, high={self.high}")
        if self.optimizer not in OPTIMIZERS:
            raise SVGRuntimeError(f"unknown optimizer {self.optimizer!r}: choose {' or '.join(OPTIMIZERS)}")
        if self.risk not in RISKS:
            raise SVGRuntimeError(f"unknown risk {self.risk!r}: choose one of {', '.join(RISKS)}")
        for name in ("n_sequences", "horizon", "n_samples"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise SVGRuntimeError(f"{name} must be an integer >= 1, got {value!r}")
        if self.iterations is not None and self.iterations < 1:
            raise SVGRuntimeError(f"iterations must be >= 1, got {self.iterations}")
        if not (self.temperature > 0 and 0 < self.beta <= 1 and self.noise_std > 0 and 0 < self.elite_fraction <= 1):
            raise SVGRuntimeError("need temperature > 0, 0 < beta <= 1, noise_std > 0 and 0 < elite_fraction <= 1")
        if self.optimizer == "cem" and self.n_elites < 2:
            raise SVGRuntimeError(f"CEM keeps {self.n_elites} elite(s) of {self.n_sequences}: raise n_sequences or "
                                  "elite_fraction so that at least 2 are kept")

    @property
    def n_iterations(self) -> int:
        return self.iterations or (1 if self.optimizer == "mppi" else 3)

    @property
    def n_elites(self) -> int:
        return int(round(self.n_sequences * self.elite_fraction))

    @property
    def action_dim(self) -> int:
        return len(self.low)


@dataclass
class Plan:
    """The result of one planning call: the chosen sequence (H, A) and its predicted futures
    frames (N, H, C, h, w), their cost, every candidate's cost (M,), and the time it took."""

    actions: np.ndarray
    frames: np.ndarray
    cost: float
    costs: np.ndarray
    ms: float
    iterations: int


class GoalImageCost:
    """Mean squared pixel distance of predicted frames to a goal image (C, h, w) in [0, 1]: over
    every step (per_step=True) or the last one only. blur (pixels) compares Gaussian-blurred
    images, which turns the distance of small objects into a smooth function of their position;
    pool > 1 first averages pool x pool pixels (pool**2 times less work; blur is in full-size pixels)."""

    def __init__(self, goal: np.ndarray, per_step: bool = True, blur: float = 0.0, pool: int = 1):
        goal = np.asarray(goal, np.float32)
        if pool < 1 or goal.shape[-1] % pool or goal.shape[-2] % pool:
            raise SVGRuntimeError(f"pool must be >= 1 and divide the frame size {goal.shape[-2:]}, got {pool}")
        self.per_step, self.pool = per_step, pool
        h, w = goal.shape[-2] // pool, goal.shape[-1] // pool
        self._rows, self._cols = gaussian_matrix(h, blur / pool), gaussian_matrix(w, blur / pool)
        self.goal = self._prepare(goal)

    def _prepare(self, frames: np.ndarray) -> np.ndarray:
        if self.pool > 1:
            p = self.pool
            frames = frames.reshape(*frames.shape[:-2], frames.shape[-2] // p, p, frames.shape[-1] // p, p)
            frames = frames.mean(axis=(-3, -1), dtype=np.float32)
        if self._rows is None:
            return frames
        return np.matmul(np.matmul(self._rows, frames), self._cols.T)  # rows, then columns

    def __call__(self, frames: np.ndarray, actions: np.ndarray) -> np.ndarray:
        frames = frames if self.per_step else frames[:, -1:]
        diff = self._prepare(frames) - self.goal
        return np.square(diff).mean(axis=(1, 2, 3, 4))


def gaussian_matrix(n: int, sigma: float) -> np.ndarray | None:
    """(n, n) matrix that blurs a length-n signal with a Gaussian of std sigma (rows sum to 1, so
    edges are not darkened); None for sigma 0. As a matmul it blurs thousands of frames at once."""
    if sigma <= 0:
        return None
    i = np.arange(n, dtype=np.float32)
    m = np.exp(-0.5 * ((i[:, None] - i[None]) / sigma) ** 2)
    return (m / m.sum(axis=1, keepdims=True)).astype(np.float32)


class Planner:
    """MPPI or CEM over a Predictor with actions, replanning at every control step."""

    def __init__(self, predictor: Predictor, cost: Cost, options: PlannerOptions):
        spec = predictor.spec
        if not spec.has_actions:
            raise SVGRuntimeError("planning needs an action-conditioned bundle (trained on data with actions): "
                                  "this one was trained without them")
        if options.action_dim != spec.action_dim:
            raise SVGRuntimeError(f"the action bounds have {options.action_dim} value(s) but the model's actions have "
                                  f"{spec.action_dim} ({', '.join(spec.action_names)})")
        self.predictor, self.cost, self.options = predictor, cost, options
        self._low, self._high = np.asarray(options.low, np.float32), np.asarray(options.high, np.float32)
        self._out: Rollout | None = None  # rollout buffers, reused by every call
        self.reset()

    @property
    def cost(self) -> Cost:
        """The cost the candidates are ranked by; may be replaced between calls (e.g. a new goal)."""
        return self._cost

    @cost.setter
    def cost(self, cost: Cost) -> None:
        if not callable(cost):
            raise SVGRuntimeError("cost must be callable: cost(frames (M, H, C, h, w), actions (M, H, A)) -> (M,)")
        self._cost = cost
        self._cost_takes_sigma = _n_params(cost) >= 3  # derived with the cost, so a new cost is read right

    def reset(self, initial_action: np.ndarray | None = None, seed: int | None = None) -> None:
        """Forget the observed frames and the plan; the first plan starts from initial_action
        (A,) held over the horizon (default: the middle of the bounds)."""
        o = self.options
        start = (self._low + self._high) / 2 if initial_action is None else self._action(initial_action, "initial_action")
        self.mean = np.repeat(start[None], o.horizon, axis=0).astype(np.float32)  # (H, A)
        self.state: State | None = None
        self.last: Plan | None = None
        self._last_action: np.ndarray | None = None
        self._rng = np.random.default_rng(o.seed if seed is None else seed)

    def observe(self, frame: np.ndarray, action: np.ndarray | None = None) -> None:
        """Condition on a real frame (C, h, w) or (h, w, C), reached by action (A,) from the last one
        (default: the action act() returned last)."""
        x = self._frame(frame)[None]
        if self.state is None:
            self.state = self.predictor.observe(x[:, None])
            return
        action = self._last_action if action is None else self._action(action, "action")
        if action is None:
            raise SVGRuntimeError("observe() of a second frame needs the action that led to it")
        self.predictor.observe_frame(self.state, x, action=action[None])

    def act(self, frame: np.ndarray) -> np.ndarray:
        """Observe the frame, plan, and return the first action of the plan (A,), in the model's units."""
        self.observe(frame)
        plan = self.plan()
        self._last_action = plan.actions[0].copy()
        if self.options.warm_start:  # shift: the next call starts from the rest of this plan
            self.mean = np.concatenate([plan.actions[1:], plan.actions[-1:]], axis=0)
        return self._last_action.copy()

    def plan(self) -> Plan:
        """Optimise the action sequence from the observed state; sets `last` and returns it."""
        if self.state is None:
            raise SVGRuntimeError("nothing observed yet: call observe(frame) or act(frame) first")
        o, start = self.options, time.perf_counter()
        mean = self.mean.copy()
        std = np.broadcast_to(o.noise_std * (self._high - self._low), mean.shape).astype(np.float32).copy()
        best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
        for _ in range(o.n_iterations):
            candidates = self._candidates(mean, std)  # (M, H, A)
            costs, frames = self._evaluate(candidates)  # (M,), (M, N, H, C, h, w)
            i = int(np.argmin(costs))
            if best is None or costs[i] < best[0]:
                best = (float(costs[i]), candidates[i].copy(), frames[i].copy(), costs.copy())
            mean, std = self._update(candidates, costs, mean, std)
        assert best is not None
        actions = mean if o.optimizer == "mppi" else best[1]
        frames = best[2] if o.optimizer == "cem" else self._futures(actions)
        self.last = Plan(actions=np.clip(actions, self._low, self._high).astype(np.float32), frames=frames,
                         cost=best[0], costs=best[3], ms=1000 * (time.perf_counter() - start),
                         iterations=o.n_iterations)
        return self.last

    # --- optimisation -------------------------------------------------------------------------

    def _candidates(self, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        o = self.options
        u = self._rng.standard_normal((o.n_sequences, o.horizon, o.action_dim)).astype(np.float32)
        if o.optimizer == "mppi":  # temporally correlated noise
            for t in range(1, o.horizon):
                u[:, t] = o.beta * u[:, t] + (1 - o.beta) * u[:, t - 1]
        cand = mean[None] + u * std[None]
        cand[0] = mean  # the current plan is always a candidate
        return np.clip(cand, self._low, self._high)

    def _update(self, candidates: np.ndarray, costs: np.ndarray, mean: np.ndarray, std: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        o = self.options
        if o.optimizer == "mppi":
            spread = float(costs.max() - costs.min())
            z = (costs - costs.min()) / (o.temperature * spread) if spread > 0 else np.zeros_like(costs)
            w = np.exp(-z)
            w /= w.sum()
            return np.tensordot(w, candidates, axes=1).astype(np.float32), std
        elites = candidates[np.argsort(costs)[:o.n_elites]]
        return elites.mean(axis=0), np.maximum(elites.std(axis=0), 1e-3 * (self._high - self._low))

    def _evaluate(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One batched rollout of every candidate x sample; the cost of each candidate (M,)."""
        o = self.options
        out = self.predictor.sample(self.state, n_samples=o.n_samples, actions=candidates[None],
                                    seed=int(self._rng.integers(2**63)), out=self._out)
        self._out = out
        frames = out.frames[0]  # (M, N, H, C, h, w)
        m, n = frames.shape[:2]
        flat = frames.reshape(m * n, *frames.shape[2:])
        acts = np.repeat(candidates, n, axis=0)
        args = (flat, acts, out.sigma[0].reshape(m * n, *out.sigma.shape[3:])) if self._cost_takes_sigma else (flat, acts)
        per_sample = np.asarray(self.cost(*args), dtype=np.float64)
        if per_sample.shape != (m * n,):
            raise SVGRuntimeError(f"the cost returned shape {per_sample.shape}; it must return one value per future "
                                  f"({m * n},)")
        if not np.isfinite(per_sample).all():
            raise SVGRuntimeError("the cost returned NaN or infinite values")
        return self._reduce(per_sample.reshape(m, n)), frames

    def _reduce(self, costs: np.ndarray) -> np.ndarray:
        """(M, N) sample costs -> (M,) sequence costs by the risk rule."""
        o = self.options
        if o.risk == "worst":
            return costs.max(axis=1)
        if o.risk == "mean_std":
            return costs.mean(axis=1) + o.risk_k * costs.std(axis=1)
        return costs.mean(axis=1)

    def _futures(self, actions: np.ndarray) -> np.ndarray:
        """The predicted futures (N, H, C, h, w) of one sequence (MPPI's averaged plan)."""
        out = self.predictor.sample(self.state, n_samples=self.options.n_samples, actions=actions[None, None],
                                    seed=int(self._rng.integers(2**63)))
        return out.frames[0, 0]

    # --- checks -------------------------------------------------------------------------------

    def _frame(self, frame: Any) -> np.ndarray:
        arr = np.asarray(frame)
        shape = self.predictor.spec.frame_shape
        if arr.shape != shape and arr.ndim == 3 and arr.shape == (shape[1], shape[2], shape[0]):
            arr = np.moveaxis(arr, -1, 0)  # (h, w, C) -> (C, h, w)
        if arr.shape != shape:
            raise SVGRuntimeError(f"observation has shape {np.shape(frame)} but the model takes {shape} (C, h, w) "
                                  f"or {(shape[1], shape[2], shape[0])} (h, w, C)")
        return np.ascontiguousarray(arr)

    def _action(self, action: Any, what: str) -> np.ndarray:
        arr = np.asarray(action, dtype=np.float32)
        if arr.shape != (self.options.action_dim,) or not np.isfinite(arr).all():
            raise SVGRuntimeError(f"{what} must be {self.options.action_dim} finite numbers, got {np.shape(action)}")
        return arr


def _n_params(fn: Callable[..., Any]) -> int:
    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return 2
