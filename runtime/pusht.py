"""Push-T simulator (gym-pusht) for recorded data and closed-loop control, without torch.

    sim = PushTSim()
    frame = sim.reset(seed=0)                 # (64, 64, 3) uint8 RGB
    frame = sim.step(np.array([300., 200.]))  # action: the agent's target position in [0, 512]^2
    sim.agent_pos, sim.block_pose, sim.coverage, sim.success

gym-pusht (gymnasium API, pymunk physics, pygame drawing) is the optional `[sim]` extra: it is
imported on first use, so importing svg_runtime never needs it. One env step is 10 physics
substeps of 0.01 s (control at 10 Hz) in which a PD controller drives the agent, a kinematic
disc of radius 15, towards the action. Frames are drawn at the workspace's own 512x512 and
reduced by area averaging (the env's own pixel observation is a 96x96 OpenCV resize).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svg_runtime.atomic import atomic_directory
from svg_runtime.errors import SVGRuntimeError

ENV_ID = "gym_pusht/PushT-v0"
WORKSPACE = 512.0  # side of the square workspace, in the env's units (its pixels at 512x512)
ACTION_NAMES = ("target_x", "target_y")
AGENT_RADIUS = 15.0
_INSTALL_HINT = 'the Push-T simulator needs gym-pusht: pip install "svg-video[sim]"'
# The agent is drawn RoyalBlue (65, 105, 225) with a lighter core (78, 126, 255): far bluer than anything
# else in the scene (block B - max(R, G) <= 21, goal and walls <= 0). Pixels count in proportion to how
# much bluer they are than this, which makes the centroid of a blended (anti-aliased) disc sub-pixel.
_BLUE_FLOOR = 30.0


def import_gym() -> Any:
    """gymnasium with gym-pusht registered; SVGRuntimeError with the install hint when missing."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless pygame
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import gym_pusht  # noqa: F401  (registers ENV_ID)
        import gymnasium
    except ImportError as e:
        raise SVGRuntimeError(f"{_INSTALL_HINT} ({e})") from e
    return gymnasium


def resize_frame(image: np.ndarray, image_size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (image_size, image_size, 3) uint8 by area averaging (PIL's BOX filter)."""
    from PIL import Image

    if image.shape[0] == image_size and image.shape[1] == image_size:
        return np.ascontiguousarray(image)
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((image_size, image_size),
                                                                          Image.Resampling.BOX))


class PushTSim:
    """One Push-T environment that returns small RGB frames; state is read from `env.unwrapped`.

    The env's own termination (coverage above 95%) and time limit are ignored: the caller decides
    when an episode ends.
    """

    def __init__(self, image_size: int = 64) -> None:
        if image_size < 8:
            raise SVGRuntimeError(f"image_size must be at least 8 pixels, got {image_size}")
        gym = import_gym()
        size = int(WORKSPACE)
        self.image_size = int(image_size)
        self.env = gym.make(ENV_ID, obs_type="pixels", observation_width=size, observation_height=size,
                            disable_env_checker=True)
        self._u = self.env.unwrapped  # PushTEnv: .agent, .block (pymunk bodies), .space, .get_obs()
        self._ready = False

    def reset(self, seed: int | None = None, state: np.ndarray | None = None) -> np.ndarray:
        """Start an episode: random agent and block poses drawn from seed, or exactly `state` = (agent
        x, y, block x, y, angle), as agent_pos and block_pose read them. Returns the first frame,
        shape = (S, S, 3) uint8."""
        if state is not None:
            state = np.asarray(state, dtype=np.float64)
            if state.shape != (5,) or not np.isfinite(state).all():
                raise SVGRuntimeError(f"state must be 5 finite numbers (agent x, y, block x, y, angle), "
                                      f"got shape {state.shape}")
        obs, _ = self.env.reset(seed=seed)
        self._ready = True
        if state is not None:
            # The env's own reset_to_state sets the block's position before its angle, and turning about
            # the centre of gravity then moves it: set the angle first so the pose is the one asked for.
            u = self._u
            u.agent.position = (float(state[0]), float(state[1]))
            u.block.angle = float(state[4])
            u.block.position = (float(state[2]), float(state[3]))
            for body in (u.agent, u.block):
                u.space.reindex_shapes_for_body(body)
            obs = u.get_obs()
        return resize_frame(obs, self.image_size)

    def step(self, action: np.ndarray) -> np.ndarray:
        """Drive the agent towards `action` (target x, y in [0, 512]) for one control step; the next frame."""
        if not self._ready:
            raise SVGRuntimeError("call reset(seed) before step(action)")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not np.isfinite(action).all():
            raise SVGRuntimeError(f"action must be 2 finite numbers (target x, y in [0, {WORKSPACE:g}]), "
                                  f"got shape {action.shape}")
        obs, *_ = self.env.step(np.clip(action, 0.0, WORKSPACE))
        return resize_frame(obs, self.image_size)

    @property
    def agent_pos(self) -> np.ndarray:
        """The agent's centre, shape = (2,) float64, workspace units."""
        return np.array(self._u.agent.position, dtype=np.float64)

    @property
    def block_pose(self) -> np.ndarray:
        """The T block's body position and angle (radians, in [0, 2 pi)), shape = (3,) float64."""
        block = self._u.block
        return np.array([block.position[0], block.position[1], block.angle % (2 * np.pi)], dtype=np.float64)

    @property
    def coverage(self) -> float:
        """Fraction of the goal T covered by the block (the env's own reward geometry)."""
        return float(self._u._get_coverage())

    @property
    def success(self) -> bool:
        """The env's success rule: coverage above its threshold (0.95)."""
        return self.coverage > float(self._u.success_threshold)

    def render_with_agent_at(self, pos: np.ndarray) -> np.ndarray:
        """The frame that would be seen with the agent at pos (x, y); the state is left unchanged."""
        pos = np.asarray(pos, dtype=np.float64)
        if pos.shape != (2,) or not np.isfinite(pos).all():
            raise SVGRuntimeError(f"pos must be 2 finite numbers (x, y), got shape {pos.shape}")
        if not self._ready:
            raise SVGRuntimeError("call reset(seed) before render_with_agent_at(pos)")
        agent, space = self._u.agent, self._u.space
        saved = agent.position
        try:
            agent.position = (float(pos[0]), float(pos[1]))
            # pymunk draws shapes from cached world coordinates: refresh them without a physics step
            space.reindex_shapes_for_body(agent)
            return resize_frame(self._u.get_obs(), self.image_size)
        finally:
            agent.position = saved
            space.reindex_shapes_for_body(agent)

    def close(self) -> None:
        self.env.close()


def agent_position_from_frame(frames: np.ndarray) -> np.ndarray:
    """The agent's centre seen in frames, shape (..., S, S, 3) uint8 -> (..., 2) float64, workspace units.

    The centroid of agent-coloured pixels, each weighted by how much bluer than the scene it is.
    NaN where no agent pixel is seen.
    """
    frames = np.asarray(frames)
    if frames.ndim < 3 or frames.shape[-1] != 3 or frames.shape[-2] != frames.shape[-3]:
        raise SVGRuntimeError(f"frames must be (..., S, S, 3) RGB, got shape {frames.shape}")
    size = frames.shape[-2]
    rgb = frames.astype(np.float32)
    blue = rgb[..., 2] - np.maximum(rgb[..., 0], rgb[..., 1])  # (..., S, S)
    weight = np.clip(blue - _BLUE_FLOOR, 0.0, None)
    total = weight.sum(axis=(-2, -1))  # (...)
    centers = (np.arange(size, dtype=np.float32) + 0.5) * (WORKSPACE / size)  # pixel centres, workspace units
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (weight.sum(axis=-2) * centers).sum(axis=-1) / total
        y = (weight.sum(axis=-1) * centers).sum(axis=-1) / total
    return np.stack([x, y], axis=-1).astype(np.float64)


@dataclass(frozen=True)
class ExplorationOptions:
    """A smooth random policy: target = agent + offset (+ a pull towards the block), clipped.

    offset follows an AR(1) process: offset' = rho * offset + scale * sqrt(1 - rho^2) * N(0, I), so
    its stationary spread is `scale` workspace units and its correlation time 1 / (1 - rho) steps.
    block_pull in [0, 1] moves the target that fraction of the way towards the block, so that
    episodes contain pushes.
    """

    scale: float = 60.0
    rho: float = 0.8
    block_pull: float = 0.15
    margin: float = 20.0

    def __post_init__(self) -> None:
        if not (self.scale >= 0 and 0 <= self.rho < 1 and 0 <= self.block_pull <= 1
                and 0 <= self.margin < WORKSPACE / 2):
            raise SVGRuntimeError(f"exploration options out of range: {self}: need scale >= 0, 0 <= rho < 1, "
                                  f"0 <= block_pull <= 1, 0 <= margin < {WORKSPACE / 2:g}")


class ExplorationPolicy:
    """ExplorationOptions run with a seeded numpy Generator; `act(agent_pos, block_xy) -> (2,) target`."""

    def __init__(self, options: ExplorationOptions, seed: int | np.random.SeedSequence) -> None:
        self.options = options
        self.rng = np.random.default_rng(seed)
        self.offset = self.rng.normal(0.0, options.scale, size=2)

    def act(self, agent_pos: np.ndarray, block_xy: np.ndarray) -> np.ndarray:
        o = self.options
        self.offset = o.rho * self.offset + o.scale * np.sqrt(1 - o.rho**2) * self.rng.normal(size=2)
        target = agent_pos + self.offset + o.block_pull * (np.asarray(block_xy) - agent_pos)
        return np.clip(target, o.margin, WORKSPACE - o.margin)


def record_episode(sim: PushTSim, policy: ExplorationPolicy, length: int, seed: int) -> dict[str, np.ndarray]:
    """One episode of `length` frames: frames (T, S, S, 3) uint8, actions (T-1, 2) float32 (taken between
    frame t and t+1), agent_pos (T, 2) and block_pose (T, 3) float32."""
    frames = [sim.reset(seed=seed)]
    agent, block, actions = [sim.agent_pos], [sim.block_pose], []
    for _ in range(length - 1):
        action = policy.act(agent[-1], block[-1][:2])
        frames.append(sim.step(action))
        actions.append(action)
        agent.append(sim.agent_pos)
        block.append(sim.block_pose)
    return {"frames": np.stack(frames), "actions": np.array(actions, dtype=np.float32).reshape(-1, 2),
            "agent_pos": np.array(agent, dtype=np.float32), "block_pose": np.array(block, dtype=np.float32)}


def episode_seeds(seed: int, n_episodes: int) -> Iterator[tuple[int, np.random.SeedSequence]]:
    """(env reset seed, policy seed) of each episode: pure functions of (seed, episode number)."""
    for i in range(n_episodes):
        sequence = np.random.SeedSequence([seed, i])
        yield int(sequence.generate_state(1)[0]), sequence.spawn(1)[0]


def record_episodes(n_episodes: int, length: int, out_dir: str | os.PathLike, seed: int, *, image_size: int = 64,
                    options: ExplorationOptions | None = None, overwrite: bool = False,
                    progress: bool = True) -> Path:
    """Record episodes of the exploration policy into out_dir (episode_00000.npz ... + meta.json).

    Written into a temporary folder beside out_dir and moved into place at the end; the same
    arguments give the same files.
    """
    if n_episodes < 1 or length < 2 or seed < 0:
        raise SVGRuntimeError(f"need --episodes >= 1, --length >= 2 and --seed >= 0, got {n_episodes}, "
                              f"{length}, {seed}")
    from tqdm.auto import tqdm

    options = options or ExplorationOptions()
    sim = PushTSim(image_size)  # before creating anything: a missing extra fails fast
    meta = {"format": "svg-pusht-episodes", "version": 1, "env_id": ENV_ID, "seed": seed,
            "n_episodes": n_episodes, "length": length, "image_size": image_size,
            "action_names": list(ACTION_NAMES), "action_units": f"workspace [0, {WORKSPACE:g}]",
            "policy": {"name": "exploration", **asdict(options)}}
    try:
        with atomic_directory(out_dir, overwrite=overwrite) as tmp:
            seeds = episode_seeds(seed, n_episodes)
            for i, (env_seed, policy_seed) in enumerate(tqdm(seeds, total=n_episodes, desc="pusht",
                                                             unit="episode", disable=not progress)):
                episode = record_episode(sim, ExplorationPolicy(options, policy_seed), length, env_seed)
                np.savez_compressed(tmp / f"episode_{i:05d}.npz", **episode)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    finally:
        sim.close()
    return Path(out_dir)
