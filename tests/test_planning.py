"""Planning over predicted futures: MPPI and CEM find known optima, respect bounds, warm-start,
reduce samples by the risk rule, and run a closed loop on a real (tiny) bundle."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_fixtures import get_bundle

from svg_runtime import Predictor, SVGRuntimeError
from svg_runtime.manifest import ModelSpec
from svg_runtime.planning import GoalImageCost, Planner, PlannerOptions
from svg_runtime.predictor import Rollout

TARGET = np.array([300.0, 120.0], np.float32)


class FakePredictor:
    """A Predictor stand-in whose futures are blank frames: only the cost on actions matters.

    It records the candidate actions of every call (to test bounds) and the eps-driven spread
    of a per-sample cost (sigma)."""

    def __init__(self) -> None:
        self.spec = ModelSpec(kind="lp", image_size=64, channels=1, g_dim=8, z_dim=2, rnn_size=8, posterior_layers=1,
                              prior_layers=1, predictor_layers=1, last_frame_skip=False, skips=(), action_dim=2)
        self.calls: list[np.ndarray] = []

    def observe(self, context, actions=None):
        return "state"

    def observe_frame(self, state, frame, action=None):
        self.calls.append(np.asarray(action))
        return state

    def sample(self, state, n_samples=1, horizon=None, seed=None, eps=None, actions=None, out=None):
        b, k, h, _ = actions.shape
        self.calls.append(actions.copy())
        rng = np.random.default_rng(seed)
        sigma = rng.standard_normal((b, k, n_samples, h, 2)).astype(np.float32)
        return Rollout(frames=np.zeros((b, k, n_samples, h, 1, 64, 64), np.float32), mu=np.zeros_like(sigma),
                       sigma=sigma, eps=sigma)


def quadratic(frames, actions):
    return np.square(actions - TARGET).sum(axis=(1, 2))


def _opts(**kw):
    return PlannerOptions(low=(0.0, 0.0), high=(512.0, 512.0), horizon=4, **kw)


@pytest.mark.parametrize("optimizer, iterations", [("mppi", 8), ("cem", 6)])
def test_optimisers_find_the_minimum_of_a_quadratic(optimizer, iterations) -> None:
    planner = Planner(FakePredictor(), quadratic, _opts(optimizer=optimizer, iterations=iterations))
    planner.observe(np.zeros((1, 64, 64), np.float32))
    first = np.abs(planner.mean - TARGET).max()
    plan = planner.plan()
    assert plan.actions.shape == (4, 2) and plan.costs.shape == (200,)
    err = np.abs(plan.actions - TARGET).max()
    assert err < 12.0 and err < first / 10  # from 256 units away to within ~2% of the range


@pytest.mark.parametrize("optimizer", ["mppi", "cem"])
def test_bounds_are_respected_even_when_the_optimum_lies_outside(optimizer) -> None:
    fake = FakePredictor()
    planner = Planner(fake, lambda f, a: np.square(a - np.array([900.0, -50.0])).sum(axis=(1, 2)),
                      _opts(iterations=10, optimizer=optimizer))
    planner.observe(np.zeros((64, 64, 1), np.uint8))  # (h, w, C) is accepted too
    plan = planner.plan()
    every = np.concatenate([c.reshape(-1, 2) for c in fake.calls])
    assert every.min() >= 0.0 and every.max() <= 512.0
    np.testing.assert_allclose(plan.actions, np.tile([512.0, 0.0], (4, 1)), atol=40.0)  # the nearest corner


def test_warm_start_shifts_the_plan_and_act_feeds_the_action_back() -> None:
    fake = FakePredictor()
    planner = Planner(fake, quadratic, _opts(iterations=3))
    a0 = planner.act(np.zeros((1, 64, 64), np.float32))
    plan = planner.last.actions
    np.testing.assert_array_equal(planner.mean[:-1], plan[1:])  # shifted by one step
    np.testing.assert_array_equal(planner.mean[-1], plan[-1])
    np.testing.assert_array_equal(a0, plan[0])
    planner.act(np.zeros((1, 64, 64), np.float32))
    observed = [c for c in fake.calls if c.shape == (1, 2)]
    np.testing.assert_array_equal(observed[0][0], a0)  # the executed action conditions the next frame
    cold = Planner(FakePredictor(), quadratic, _opts(iterations=3, warm_start=False))
    cold.act(np.zeros((1, 64, 64), np.float32))
    np.testing.assert_array_equal(cold.mean, np.full((4, 2), 256.0))


def test_risk_rules_reduce_samples() -> None:
    planner = Planner(FakePredictor(), lambda f, a, sigma: sigma[:, 0, 0], _opts(n_samples=5, risk="worst"))
    costs = np.array([[1.0, 5.0, 3.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(planner._reduce(costs), [5.0, 2.0])
    for risk, want in (("mean", [3.0, 2.0]), ("mean_std", [3.0 + 2 * np.std([1, 5, 3]), 2.0])):
        p = Planner(FakePredictor(), quadratic, _opts(risk=risk, risk_k=2.0))
        np.testing.assert_allclose(p._reduce(costs), want)
    planner.observe(np.zeros((1, 64, 64), np.float32))
    assert planner.plan().costs.shape == (200,)  # the cost saw sigma (a third parameter)


@pytest.mark.parametrize("kw, match", [
    (dict(optimizer="sgd"), "unknown optimizer"),
    (dict(n_sequences=2.5), "n_sequences must be an integer"),
    (dict(horizon=0), "horizon must be an integer >= 1"),
    (dict(optimizer="cem", n_sequences=20), "CEM keeps 1 elite"),
    (dict(risk="max"), "unknown risk"),
    (dict(beta=0.0), "0 < beta <= 1"),
])
def test_bad_options_are_refused(kw, match) -> None:
    with pytest.raises(SVGRuntimeError, match=match):
        PlannerOptions(low=(0.0, 0.0), high=(1.0, 1.0), **kw)
    with pytest.raises(SVGRuntimeError, match="low < high"):
        PlannerOptions(low=(0.0, 1.0), high=(1.0, 1.0))


def test_planner_refuses_mismatched_models_and_inputs(tmp_path_factory) -> None:
    with pytest.raises(SVGRuntimeError, match="needs an action-conditioned bundle"):
        Planner(Predictor.load(get_bundle(tmp_path_factory, "lp").path, threads=1), quadratic, _opts())
    with pytest.raises(SVGRuntimeError, match="bounds have 3 value"):
        Planner(FakePredictor(), quadratic, PlannerOptions(low=(0, 0, 0), high=(1, 1, 1)))
    planner = Planner(FakePredictor(), quadratic, _opts())
    with pytest.raises(SVGRuntimeError, match="nothing observed yet"):
        planner.plan()
    with pytest.raises(SVGRuntimeError, match=r"observation has shape \(3, 64, 64\)"):
        planner.observe(np.zeros((3, 64, 64)))
    bad = Planner(FakePredictor(), lambda f, a: np.zeros(3), _opts())
    bad.observe(np.zeros((1, 64, 64), np.float32))
    with pytest.raises(SVGRuntimeError, match="one value per future"):
        bad.plan()


def test_goal_image_cost_prefers_futures_nearer_the_goal() -> None:
    goal = np.zeros((1, 16, 16), np.float32)
    goal[0, 10:12, 10:12] = 1.0
    frames = np.zeros((3, 2, 1, 16, 16), np.float32)
    for i, x in enumerate((10, 7, 1)):  # a 2x2 dot at, near and far from the goal's
        frames[i, :, 0, 10:12, x:x + 2] = 1.0
    sharp = GoalImageCost(goal)(frames, None)
    blurred = GoalImageCost(goal, blur=2.0)(frames, None)
    assert sharp[0] == 0 and sharp[1] == sharp[2]  # no overlap: pixel distance cannot tell near from far
    assert blurred[0] < blurred[1] < blurred[2]  # blurred: it can
    final = GoalImageCost(goal, per_step=False)(frames[:, ::-1], None)
    np.testing.assert_allclose(final, sharp)


def test_closed_loop_on_a_tiny_bundle(tmp_path_factory) -> None:
    """A dot world: the action is the dot's next position (clipped steps); the planner drives a real
    exported model; the loop runs, plans within bounds, and its buffers are reused."""
    bundle = get_bundle(tmp_path_factory, "lp_act")
    p = Predictor.load(bundle.path, threads=1)
    goal = np.zeros((1, 64, 64), np.float32)
    planner = Planner(p, GoalImageCost(goal, blur=2.0), PlannerOptions(low=(0.0, 0.0), high=(512.0, 512.0),
                      n_sequences=16, horizon=3, n_samples=2))
    planner.reset(initial_action=np.array([256.0, 256.0]))
    pos = np.array([100.0, 100.0])
    frames_buffer = None
    for _ in range(3):
        frame = np.zeros((1, 64, 64), np.float32)
        y, x = (pos / 8).astype(int)
        frame[0, y:y + 3, x:x + 3] = 1.0
        action = planner.act(frame)
        assert action.shape == (2,) and np.all((action >= 0) & (action <= 512))
        assert planner.last.frames.shape == (2, 3, 1, 64, 64) and planner.last.ms > 0
        if frames_buffer is not None:
            assert planner._out.frames is frames_buffer  # no per-call allocation of the rollout
        frames_buffer = planner._out.frames
        pos = pos + np.clip(action - pos, -30, 30)


def test_a_replaced_cost_is_called_with_its_own_signature() -> None:
    planner = Planner(FakePredictor(), quadratic, _opts())
    planner.observe(np.zeros((1, 64, 64), np.float32))
    planner.cost = lambda f, a, sigma: sigma[:, 0, 0]  # takes sigma: must receive it
    assert planner.plan().costs.shape == (200,)
    with pytest.raises(SVGRuntimeError, match="cost must be callable"):
        planner.cost = "distance"
