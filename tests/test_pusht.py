"""Push-T: the simulator wrapper and recorder (need gym-pusht), and data with actions (synthetic, no simulator)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from svg_core.config import preset
from svg_core.datasets import build_dataset, dataset_actions, fit_to_data
from svg_core.errors import SVGError

N_FRAMES = 12  # frames per synthetic episode


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SVG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    return tmp_path / "cache"


def synthetic_episode(episode: int, n_frames: int = N_FRAMES) -> dict[str, np.ndarray]:
    """Flat frames whose red level is 10 + 7 t and green level 20 * episode; action t = (red of frame t,
    red of frame t+1), so an item's actions can be checked against its frames."""
    red = 10 + 7 * np.arange(n_frames)
    frames = np.zeros((n_frames, 16, 16, 3), np.uint8)
    frames[..., 0] = red[:, None, None]
    frames[..., 1] = 20 * episode
    actions = np.stack([red[:-1], red[1:]], axis=1).astype(np.float32)  # (T-1, 2)
    return {"frames": frames, "actions": actions}


def write_recording(root: Path, n_episodes: int = 10) -> Path:
    """A folder laid out as `svg data pusht` writes it, with synthetic episodes."""
    root.mkdir(parents=True)
    for e in range(n_episodes):
        ep = synthetic_episode(e)
        np.savez(root / f"episode_{e:05d}.npz", **ep, agent_pos=np.zeros((N_FRAMES, 2), np.float32))
    meta = {"format": "svg-pusht-episodes", "version": 1, "action_names": ["target_x", "target_y"]}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def pusht_cfg(root: Path, n_past: int = 2, n_future: int = 4):
    return fit_to_data(preset("smmnist-small", dataset=f"pusht:{root}", n_past=n_past, n_future=n_future))


def check_alignment(item: dict[str, torch.Tensor]) -> None:
    red = item["frames"][:, 0, 0, 0].numpy() * 255  # (T,)
    np.testing.assert_allclose(item["actions"][:, 0].numpy(), red[:-1], atol=1e-3)
    np.testing.assert_allclose(item["actions"][:, 1].numpy(), red[1:], atol=1e-3)


def episode_of(item: dict[str, torch.Tensor]) -> int:
    return int(round(float(item["frames"][0, 1, 0, 0]) * 255 / 20))


def test_pusht_items_are_pure_aligned_windows_with_held_out_episodes(tmp_path: Path) -> None:
    cfg = pusht_cfg(write_recording(tmp_path / "rec"))
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    item = train[3]
    assert item["frames"].shape == (6, 3, 64, 64) and item["frames"].dtype == torch.float32
    assert item["actions"].shape == (5, 2) and item["actions"].dtype == torch.float32
    assert torch.equal(item["frames"], train[3]["frames"]) and torch.equal(item["actions"], train[3]["actions"])
    assert not torch.equal(item["frames"], train[4]["frames"])
    for i in range(40):
        check_alignment(train[i])
        check_alignment(test[i])
    assert {episode_of(train[i]) for i in range(60)} == set(range(9))  # the last 10% are held out
    assert {episode_of(test[i]) for i in range(10)} == {9}
    assert train.action_dim == 2 and train.action_names == ("target_x", "target_y")


def test_action_stats_cover_the_training_episodes(tmp_path: Path) -> None:
    cfg = pusht_cfg(write_recording(tmp_path / "rec"))
    action_dim, names, mean, std = dataset_actions(cfg)
    actions = np.concatenate([synthetic_episode(e)["actions"] for e in range(9)])
    assert (action_dim, names) == (2, ("target_x", "target_y"))
    assert mean.dtype == np.float32 and std.dtype == np.float32
    np.testing.assert_allclose(mean, actions.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, actions.std(0), rtol=1e-5)


def test_default_collate_stacks_frames_and_actions(tmp_path: Path) -> None:
    cfg = pusht_cfg(write_recording(tmp_path / "rec", n_episodes=3))
    batch = next(iter(torch.utils.data.DataLoader(build_dataset(cfg), batch_size=4)))
    assert batch["frames"].shape == (4, 6, 3, 64, 64) and batch["actions"].shape == (4, 5, 2)


def test_pusht_needs_a_recording(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SVGError, match="svg data pusht"):
        build_dataset(preset("smmnist-small", dataset=f"pusht:{tmp_path / 'empty'}"))
    with pytest.raises(SVGError, match="pusht:DIR"):
        build_dataset(preset("smmnist-small", dataset="pusht"))


def test_folder_npz_with_actions_gives_aligned_actions(tmp_path: Path) -> None:
    root = tmp_path / "vids"
    root.mkdir()
    for e in range(2):
        np.savez(root / f"v{e}.npz", **synthetic_episode(e))
    cfg = fit_to_data(preset("smmnist-small", dataset=f"folder:{root}", n_past=2, n_future=3))
    data = build_dataset(cfg)
    assert data.action_dim == 2 and data.action_names == ("action_0", "action_1")
    assert data[0]["actions"].shape == (4, 2)
    for i in range(20):
        check_alignment(data[i])
    assert dataset_actions(cfg)[0] == 2


def test_folder_without_actions_has_none(tmp_path: Path) -> None:
    root = tmp_path / "vids"
    root.mkdir()
    np.save(root / "v.npy", synthetic_episode(0)["frames"])
    cfg = fit_to_data(preset("smmnist-small", dataset=f"folder:{root}", n_past=2, n_future=3))
    data = build_dataset(cfg)
    assert "actions" not in data[0] and data.action_dim == 0 and data.action_names == ()
    assert dataset_actions(cfg)[:2] == (0, ())


@pytest.mark.parametrize("problem", ["count", "dimension", "missing"])
def test_folder_action_errors_name_the_file(tmp_path: Path, problem: str) -> None:
    root = tmp_path / "vids"
    root.mkdir()
    np.savez(root / "a.npz", **synthetic_episode(0))
    bad = synthetic_episode(1)
    if problem == "count":
        bad["actions"] = bad["actions"][:-2]
    elif problem == "dimension":
        bad["actions"] = np.zeros((N_FRAMES - 1, 3), np.float32)
    else:
        del bad["actions"]
    np.savez(root / "b.npz", **bad)
    cfg = preset("smmnist-small", dataset=f"folder:{root}", channels=3, n_past=2, n_future=3)
    message = {"count": "9 actions for 12 frames", "dimension": "dimension 3", "missing": "has no actions"}
    with pytest.raises(SVGError, match=message[problem]) as info:
        build_dataset(cfg)
    assert "b.npz" in str(info.value)


def test_cli_without_the_sim_extra_prints_the_install_hint(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from svg_cli.app import app

    monkeypatch.setitem(sys.modules, "gym_pusht", None)  # `import gym_pusht` raises ImportError
    result = CliRunner().invoke(app, ["data", "pusht", "--episodes", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert 'pip install "svg-video[sim]"' in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# ---- the simulator (gym-pusht) ----


def test_recorder_writes_episodes_whose_actions_move_the_agent(tmp_path: Path) -> None:
    pytest.importorskip("gym_pusht")
    from svg_runtime.pusht import record_episodes

    out = record_episodes(2, 8, tmp_path / "rec", seed=3, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["action_names"] == ["target_x", "target_y"] and meta["image_size"] == 64
    assert sorted(p.name for p in out.iterdir()) == ["episode_00000.npz", "episode_00001.npz", "meta.json"]
    with np.load(out / "episode_00001.npz") as ep:
        frames, actions, agent, block = ep["frames"], ep["actions"], ep["agent_pos"], ep["block_pose"]
    assert frames.shape == (8, 64, 64, 3) and frames.dtype == np.uint8
    assert actions.shape == (7, 2) and actions.dtype == np.float32
    assert agent.shape == (8, 2) and block.shape == (8, 3)
    # the agent runs towards each target: closer after the step than before
    before = np.linalg.norm(actions - agent[:-1], axis=1)
    after = np.linalg.norm(actions - agent[1:], axis=1)
    assert (after < before).all() and np.abs(np.diff(agent, axis=0)).max() > 5
    again = record_episodes(2, 8, tmp_path / "again", seed=3, progress=False)
    with np.load(again / "episode_00001.npz") as ep2:
        assert np.array_equal(ep2["frames"], frames) and np.array_equal(ep2["actions"], actions)


def test_agent_position_from_frame_and_render_with_agent_at() -> None:
    pytest.importorskip("gym_pusht")
    from svg_runtime.pusht import ExplorationOptions, ExplorationPolicy, PushTSim, agent_position_from_frame

    sim = PushTSim()
    frames, truth = [], []
    for episode in range(4):
        frames.append(sim.reset(seed=episode))
        truth.append(sim.agent_pos)
        policy = ExplorationPolicy(ExplorationOptions(), episode)
        for _ in range(10):
            frames.append(sim.step(policy.act(sim.agent_pos, sim.block_pose[:2])))
            truth.append(sim.agent_pos)
    error = np.linalg.norm(agent_position_from_frame(np.stack(frames)) - np.stack(truth), axis=1)
    assert error.mean() < 1.0 and error.max() < 4.0  # measured over 300 frames: mean 0.5, max 2.4 units

    pos, block, frame = sim.agent_pos, sim.block_pose, frames[-1]
    goal = sim.render_with_agent_at(np.array([100.0, 420.0]))
    assert np.linalg.norm(agent_position_from_frame(goal) - [100.0, 420.0]) < 4.0
    assert np.array_equal(sim.agent_pos, pos) and np.array_equal(sim.block_pose, block)
    assert np.array_equal(sim.render_with_agent_at(pos), frame)  # nothing moved meanwhile


def test_block_on_the_goal_is_a_success() -> None:
    pytest.importorskip("gym_pusht")
    from svg_runtime.errors import SVGRuntimeError
    from svg_runtime.pusht import PushTSim, agent_position_from_frame

    sim = PushTSim()
    frame = sim.reset(state=np.array([50.0, 60.0, 256.0, 256.0, np.pi / 4]))  # the env's goal pose
    np.testing.assert_allclose(sim.block_pose, [256.0, 256.0, np.pi / 4], atol=1e-9)
    np.testing.assert_allclose(agent_position_from_frame(frame), [50.0, 60.0], atol=4.0)
    assert sim.coverage > 0.95 and sim.success
    sim.reset(state=np.array([50.0, 50.0, 120.0, 400.0, 0.0]))
    assert sim.coverage < 0.1 and not sim.success
    with pytest.raises(SVGRuntimeError, match="action must be 2"):
        sim.step(np.zeros(3))
