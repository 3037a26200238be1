"""Do predicted futures follow the actions? Two checks of an action-conditioned Push-T bundle
against the real simulator, with the torch-free runtime:

1. A GIF grid: one start, 4 different action sequences (the agent's target moves right, left,
   down, up); for each, the simulator's true frames beside the model's predicted ones.
2. The per-step error of the agent's position seen in predicted frames (its colour centroid,
   svg_runtime.pusht.agent_position_from_frame) against the simulator's true position, on held-out
   recorded episodes under their recorded actions; optionally next to a model trained without
   actions on the same data, and the copy-last-frame baseline.

    python examples/pusht_actions.py BUNDLE --data DIR [--baseline NOACTION_BUNDLE] --out DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from svg_runtime import Predictor
from svg_runtime.media import save_video
from svg_runtime.pusht import PushTSim, agent_position_from_frame

DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}


def to_chw(frames: np.ndarray) -> np.ndarray:
    """(..., h, w, 3) uint8 -> (..., 3, h, w) float32 in [0, 1]."""
    return np.moveaxis(frames, -1, -3).astype(np.float32) / 255.0


def to_hwc(frames: np.ndarray) -> np.ndarray:
    return (np.clip(np.moveaxis(frames, -3, -1), 0, 1) * 255 + 0.5).astype(np.uint8)


def action_grid(p: Predictor, out: Path, seed: int = 3, horizon: int = 8, step: float = 40.0) -> Path:
    """Rows: action sequences; each row: true frames | predicted frames, side by side per step."""
    sim = PushTSim()
    first = sim.reset(seed=seed)
    start = sim.agent_pos.copy()
    state0 = np.concatenate([start, sim.block_pose])
    seqs, truths = [], []
    for dx, dy in DIRECTIONS.values():
        sim.reset(seed=seed, state=state0)
        seq = np.stack([np.clip(start + (t + 1) * step * np.array([dx, dy]), 0, 512) for t in range(horizon)])
        truths.append(np.stack([sim.step(a) for a in seq]))
        seqs.append(seq)
    sim.close()
    state = p.observe(to_chw(first)[None, None])
    pred = p.sample(state, n_samples=1, actions=np.stack(seqs)[None].astype(np.float32), seed=0).frames[0, :, 0]
    rows = []
    pad = np.full((64, 4, 3), 255, np.uint8)
    for truth, guess in zip(truths, to_hwc(pred), strict=True):
        rows.append(np.stack([np.concatenate([t, pad, g], axis=1) for t, g in zip(truth, guess, strict=True)]))
    grid = np.concatenate([np.concatenate([r, np.full((horizon, 4, r.shape[2], 3), 255, np.uint8)], axis=1)
                           for r in rows], axis=1)  # (T, rows * 68, 132, 3)
    path = out / "actions_grid.gif"
    save_video(path, np.kron(grid, np.ones((1, 3, 3, 1), np.uint8)), fps=2)
    return path


def agent_error(p: Predictor, episodes: list[Path], n_cond: int = 2, horizon: int = 8, n_samples: int = 5
                ) -> np.ndarray:
    """Mean over episodes and samples of |seen agent - true agent| per predicted step (horizon,)."""
    errs = []
    for path in episodes:
        with np.load(path) as ep:
            frames, actions, agent = ep["frames"], ep["actions"], ep["agent_pos"]
        ctx = to_chw(frames[None, :n_cond])
        kw = {}
        if p.spec.has_actions:
            state = p.observe(ctx, actions=actions[None, :n_cond - 1])
            kw["actions"] = actions[None, None, n_cond - 1:n_cond - 1 + horizon]
        else:
            state = p.observe(ctx)
        pred = p.sample(state, n_samples=n_samples, horizon=horizon, seed=0, **kw).frames.reshape(n_samples, horizon,
                                                                                                   3, 64, 64)
        seen = agent_position_from_frame(to_hwc(pred))  # (N, H, 2)
        truth = agent[n_cond:n_cond + horizon]
        errs.append(np.nan_to_num(np.linalg.norm(seen - truth, axis=-1), nan=512.0).mean(axis=0))
    return np.mean(errs, axis=0)


def copy_last_error(episodes: list[Path], n_cond: int = 2, horizon: int = 8) -> np.ndarray:
    errs = []
    for path in episodes:
        with np.load(path) as ep:
            agent = ep["agent_pos"]
        errs.append(np.linalg.norm(agent[n_cond:n_cond + horizon] - agent[n_cond - 1], axis=-1))
    return np.mean(errs, axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--data", type=Path, required=True, help="episodes recorded by `svg data pusht`")
    ap.add_argument("--baseline", help="a bundle trained without actions on the same data")
    ap.add_argument("--held-out", type=float, default=0.1, help="fraction of episodes (the last ones) to test on")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    episodes = sorted(args.data.glob("episode_*.npz"))
    held_out = episodes[len(episodes) - max(1, round(len(episodes) * args.held_out)):]
    p = Predictor.load(args.bundle)
    print("wrote", action_grid(p, args.out))
    table = {"copy-last": copy_last_error(held_out), "actions": agent_error(p, held_out)}
    if args.baseline:
        table["no-actions"] = agent_error(Predictor.load(args.baseline), held_out)
    print(f"agent position error (workspace units, 512 wide) per predicted step, {len(held_out)} held-out episodes")
    print("model       " + " ".join(f"{t + 1:>6d}" for t in range(len(table["actions"]))) + "   mean")
    for name, err in table.items():
        print(f"{name:11s} " + " ".join(f"{e:6.1f}" for e in err) + f" {err.mean():6.1f}")
    (args.out / "agent_error.json").write_text(json.dumps({k: v.tolist() for k, v in table.items()}, indent=2))


if __name__ == "__main__":
    main()
