"""Action-conditioned SVG: the action reaches the right frames, normalisation, export parity, the
runtime's action API and its refusals, and an unconditional model left as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from bundle_fixtures import get_bundle, make_run, random_actions, random_context
from typer.testing import CliRunner

from svg_cli.app import app
from svg_core import sampling
from svg_core.config import ModelConfig, RunConfig
from svg_core.errors import SVGError
from svg_runtime import Predictor, SVGRuntimeError
from svg_runtime.manifest import ACTION, ModelSpec, graph_io

ATOL = 1e-4


def test_changing_an_action_changes_later_frames_only(tmp_path) -> None:
    _, model = make_run(tmp_path, "a", kind="lp", action_dim=2, action_mean=(256.0, 250.0), action_std=(90.0, 110.0))
    x = torch.rand(2, 6, 1, 64, 64)
    acts = random_actions(model.cfg, 2, 5)
    eps = torch.zeros(2, 5, model.cfg.z_dim)
    with torch.no_grad():
        base = model.eval().training_loss(x, n_past=2, beta=1e-4, eps=eps, actions=acts).x_hat  # (B, 5, ...)
        moved = acts.clone()
        moved[:, 3] += torch.tensor([150.0, -120.0])  # action 3: taken between frames 3 and 4
        other = model.training_loss(x, n_past=2, beta=1e-4, eps=eps, actions=moved).x_hat
    diff = (other - base).abs().flatten(2).amax(2)  # (B, 5): x_hat[:, t] is frame t + 1
    assert torch.all(diff[:, :3] == 0)  # frames 1..3 do not see it
    assert torch.all(diff[:, 3] > 1e-3)  # frame 4 does


def test_the_prior_sees_the_action_only_with_action_prior(tmp_path) -> None:
    for action_prior in (True, False):
        _, model = make_run(tmp_path, f"p{action_prior}", kind="lp", action_dim=2, action_prior=action_prior)
        state = sampling.observe(model, torch.rand(2, 2, 1, 64, 64), torch.zeros(2, 1, 2))
        eps = torch.zeros(2, model.cfg.z_dim)
        with torch.no_grad():
            mu_a = sampling.step(model, sampling.clone(state), eps, torch.zeros(2, 2))[1]
            mu_b = sampling.step(model, sampling.clone(state), eps, torch.full((2, 2), 3.0))[1]
        assert (not torch.allclose(mu_a, mu_b)) == action_prior


def test_normalisation_uses_the_config_statistics_and_round_trips(tmp_path) -> None:
    cfg = ModelConfig(width=4, g_dim=16, z_dim=4, rnn_size=32, action_dim=2, action_mean=[256.0, 250.0],
                      action_std=[90.0, 110.0], action_names=["target_x", "target_y"])
    assert cfg.action_mean == (256.0, 250.0)  # JSON lists become tuples: configs compare equal
    again = RunConfig.from_dict(json.loads(RunConfig(model=cfg).to_json())).model
    assert again == cfg
    from svg_core.model import SVG

    model = SVG(cfg)
    a = torch.tensor([[256.0, 250.0], [346.0, 30.0]])
    torch.testing.assert_close(model.action_input(a, 2), torch.tensor([[0.0, 0.0], [1.0, -2.0]]))
    assert "action_mean" not in model.state_dict()  # the config is their one source


@pytest.mark.parametrize("bad, match", [
    (dict(action_dim=2, action_mean=[1.0]), "action_mean has 1 values"),
    (dict(action_dim=2, action_std=[1.0, 0.0]), "action_std must be > 0"),
    (dict(action_dim=-1), "action_dim must be >= 0"),
])
def test_bad_action_options_are_refused(bad, match) -> None:
    with pytest.raises(SVGError, match=match):
        ModelConfig(**bad)


def test_action_graphs_take_an_action_and_parity_passed(lp_act) -> None:
    m = lp_act.manifest
    spec = ModelSpec.from_manifest(m)
    assert m["model"]["action_dim"] == 2 and m["model"]["action_names"] == ["target_x", "target_y"]
    assert m["model"]["action_mean"] == [256.0, 250.0] and m["model"]["action_std"] == [90.0, 110.0]
    for graph in ("condition", "step", "prior"):
        assert ACTION in graph_io(spec, graph).input_names
        assert ACTION in [t["name"] for t in m["graphs"][graph]["inputs"]]
    assert m["parity"]["passed"]
    assert max(e["max_abs_err"] for e in m["parity"]["graphs"].values()) < ATOL
    assert m["parity"]["rollout"]["sequences"] == 2 and m["parity"]["rollout"]["max_abs_err"] < ATOL


def test_unconditional_graphs_have_no_action_input(tmp_path_factory) -> None:
    m = get_bundle(tmp_path_factory, "lp").manifest
    spec = ModelSpec.from_manifest(m)
    assert spec.action_dim == 0
    for graph in spec.graphs():
        assert ACTION not in graph_io(spec, graph).input_names


@pytest.mark.parametrize("io_binding", [False, True], ids=["run", "iobinding"])
def test_runtime_rollout_of_candidate_sequences_matches_pytorch(lp_act, io_binding) -> None:
    p = Predictor.load(lp_act.path, threads=1, io_binding=io_binding)
    cfg = lp_act.model.cfg
    ctx = random_context(p.spec, t=3)
    ctx_actions = random_actions(cfg, 2, 2, seed=1).numpy()
    seqs = random_actions(cfg, 2, 3, 5, seed=2).numpy()  # (B, K=3, H=5, A)
    eps = np.random.default_rng(3).standard_normal((2, 3, 2, 5, p.spec.z_dim), dtype=np.float32)
    got = p.sample(p.observe(ctx, actions=ctx_actions), n_samples=2, eps=eps, actions=seqs)
    want = sampling.generate(lp_act.model, torch.from_numpy(ctx), 5, 2, eps=torch.from_numpy(eps),
                             context_actions=torch.from_numpy(ctx_actions), actions=torch.from_numpy(seqs))
    assert got.frames.shape == (2, 3, 2, 5, *p.spec.frame_shape)
    np.testing.assert_allclose(got.frames, want.frames.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got.mu, want.mu.numpy(), atol=ATOL, rtol=1e-4)
    np.testing.assert_allclose(got.sigma, want.sigma.numpy(), atol=ATOL, rtol=1e-4)
    # the sequences matter: the same noise under other actions gives other futures
    assert np.abs(got.frames[:, 0] - got.frames[:, 1]).max() > 0.05


def test_stepwise_runtime_matches_sample_and_pytorch(lp_act, lp_act_pred) -> None:
    p, cfg = lp_act_pred, lp_act.model.cfg
    ctx = random_context(p.spec, t=2)
    ctx_actions = random_actions(cfg, 2, 1, seed=4).numpy()
    seq = random_actions(cfg, 2, 1, 3, seed=5).numpy()
    eps = np.random.default_rng(6).standard_normal((2, 1, 1, 3, p.spec.z_dim), dtype=np.float32)
    whole = p.sample(p.observe(ctx, actions=ctx_actions), n_samples=1, eps=eps, actions=seq)
    state = p.observe(ctx[:, :1])
    p.observe_frame(state, ctx[:, 1], action=ctx_actions[:, 0])
    for t in range(3):
        out = p.step(state, eps=eps[:, 0, 0, t], action=seq[:, 0, t])
        np.testing.assert_allclose(out.frame, whole.frames[:, 0, 0, t], atol=ATOL, rtol=0)
    with torch.no_grad():
        s = sampling.observe_frame(lp_act.model, sampling.observe(lp_act.model, torch.from_numpy(ctx[:, :1])),
                                   torch.from_numpy(ctx[:, 1]), torch.from_numpy(ctx_actions[:, 0]))
        x = sampling.step(lp_act.model, s, torch.from_numpy(eps[:, 0, 0, 0]), torch.from_numpy(seq[:, 0, 0]))[0]
    np.testing.assert_allclose(x.numpy(), whole.frames[:, 0, 0, 0], atol=ATOL, rtol=0)


def test_seeded_sample_with_actions_uses_documented_noise(lp_act_pred) -> None:
    p = lp_act_pred
    state = p.observe(random_context(p.spec, t=1))
    seqs = np.full((2, 2, 4, 2), 250.0, np.float32)
    a = p.sample(state, n_samples=3, seed=7, actions=seqs)
    eps = np.random.default_rng(7).standard_normal((2, 2, 3, 4, p.spec.z_dim), dtype=np.float32)
    np.testing.assert_array_equal(a.eps, eps)
    np.testing.assert_array_equal(p.sample(state, n_samples=3, eps=eps, actions=seqs).frames, a.frames)


def test_action_model_refuses_missing_or_wrong_actions(lp_act_pred) -> None:
    p = lp_act_pred
    ctx = random_context(p.spec, t=3)
    with pytest.raises(SVGRuntimeError, match=r"action-conditioned: pass the actions between the context frames, "
                                              r"shape \(2, 2, 2\) \(target_x, target_y\)"):
        p.observe(ctx)
    state = p.observe(ctx[:, :1])  # one frame needs no action
    with pytest.raises(SVGRuntimeError, match=r"action-conditioned: pass actions of shape \(B, K, horizon, 2\)"):
        p.sample(state, n_samples=2, horizon=3)
    with pytest.raises(SVGRuntimeError, match=r"actions must have shape \(2, 1, 3, 2\), got \(2, 1, 3, 3\)"):
        p.sample(state, actions=np.zeros((2, 1, 3, 3)))
    with pytest.raises(SVGRuntimeError, match=r"actions must have shape \(B, K, horizon, A\)"):
        p.sample(state, actions=np.zeros((2, 3, 2)))
    with pytest.raises(SVGRuntimeError, match="NaN"):
        p.step(state, action=np.full((2, 2), np.nan))
    with pytest.raises(SVGRuntimeError, match="pass the action"):
        p.step(state)


def test_unconditional_model_refuses_actions(tmp_path_factory) -> None:
    p = Predictor.load(get_bundle(tmp_path_factory, "lp").path, threads=1)
    state = p.observe(random_context(p.spec, t=2))
    with pytest.raises(SVGRuntimeError, match="trained without actions: drop the actions"):
        p.sample(state, actions=np.zeros((2, 1, 3, 2)))
    with pytest.raises(SVGRuntimeError, match="trained without actions"):
        p.observe(random_context(p.spec, t=2), actions=np.zeros((2, 1, 2)))


def test_cli_rollout_with_actions(lp_act, tmp_path) -> None:
    rng = np.random.default_rng(0)
    ctx = tmp_path / "episode.npz"
    np.savez(ctx, frames=rng.integers(0, 255, (4, 64, 64, 1), dtype=np.uint8),
             actions=rng.normal(256, 90, (3, 2)).astype(np.float32))
    np.save(tmp_path / "plan.npy", rng.normal(256, 90, (3, 6, 2)).astype(np.float32))  # K=3 sequences, H=6
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(app, ["rollout", str(lp_act.path), "--context", str(ctx), "--cond", "3",
                                      "--actions", str(tmp_path / "plan.npy"), "--samples", "2", "--seed", "0",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "for each of 3 action sequence(s)" in result.output
    with np.load(out) as data:
        assert data["frames"].shape == (1, 3, 2, 6, 1, 64, 64)
        assert data["actions"].shape == (1, 3, 6, 2)
    gif = CliRunner().invoke(app, ["rollout", str(lp_act.path), "--context", str(ctx), "--cond", "3", "--actions",
                                   str(tmp_path / "plan.npy"), "--samples", "2", "--out", str(tmp_path / "o.gif")])
    assert gif.exit_code == 0, gif.output
    missing = CliRunner().invoke(app, ["rollout", str(lp_act.path), "--context", str(ctx), "--out", str(out)])
    assert missing.exit_code == 1 and "pass --actions FILE.npy" in missing.output


def test_motion_weight_weighs_only_pixels_that_change(tmp_path) -> None:
    _, model = make_run(tmp_path, "m", kind="det")
    x = torch.full((2, 3, 1, 64, 64), 0.9)
    x[:, 1:, :, 10:14, 10:14] = 0.1  # a dark square appears in frame 1 and stays in frame 2
    with torch.no_grad():
        plain = model.training_loss(x, n_past=1, beta=0.0)
        weighted = model.training_loss(x, n_past=1, beta=0.0, motion_weight=50.0)
        err = (plain.x_hat - x[:, 1:]) ** 2  # (B, 2, 1, H, W)
    torch.testing.assert_close(weighted.mse, plain.mse)  # the reported mse stays the plain one
    torch.testing.assert_close(plain.loss, plain.mse)
    # frame 1: the 16 changed pixels weigh 1 + 50 * 0.8 = 41; frame 2 changed nowhere: weight 1
    want = err[:, 0].mean() + 40 * err[:, 0, :, 10:14, 10:14].sum() / err[:, 0].numel() + err[:, 1].mean()
    torch.testing.assert_close(weighted.loss, want)


def test_the_shipped_pusht_model_follows_its_actions() -> None:
    """pretrained:pusht (torch-free, offline): two candidate sequences from one frame give futures
    whose agent goes where each sequence sends it."""
    from svg_runtime.pretrained import model_card
    from svg_runtime.pusht import agent_position_from_frame

    p = Predictor.load("pretrained:pusht", threads=1)
    assert p.spec.action_names == ("target_x", "target_y") and p.spec.frame_shape == (3, 64, 64)
    card = model_card("pretrained:pusht")
    assert card["evaluation"]["control_reach"]["planner"]["success_rate"] > 0.5
    frame = np.full((1, 1, 3, 64, 64), 0.97, np.float32)
    frame[..., 2, 30:34, 30:34], frame[..., :2, 30:34, 30:34] = 0.9, 0.35  # a blue agent at (256, 256)
    seqs = np.stack([np.tile([[256.0 + 30 * (t + 1), 256.0] for t in range(6)], (1, 1)),
                     np.tile([[256.0, 256.0 + 30 * (t + 1)] for t in range(6)], (1, 1))])[None].astype(np.float32)
    out = p.sample(p.observe(frame), n_samples=2, actions=seqs, seed=0).frames[0, :, :, -1]  # (K, N, C, H, W)
    seen = agent_position_from_frame((np.moveaxis(out, -3, -1) * 255).astype(np.uint8)).mean(axis=1)  # (K, 2)
    assert seen[0, 0] - seen[1, 0] > 40 and seen[1, 1] - seen[0, 1] > 40  # right vs down
