"""A planning loop on the torch-free runtime: sample many futures, score them against a goal, keep the best.

    python examples/planning_loop.py --bundle runs/demo/bundle --samples 100 --horizon 10
    python -m svg_examples.planning_loop --bundle runs/demo/bundle     # the same, from an installed wheel

1. Observe a context: --context FILE (anything `svg rollout` reads), or a synthetic scene, a square
   moving right, whose goal frame is the square where it would be after the horizon.
2. Fork the state into N samples and step them H frames one at a time with `p.step`, as a
   controller would between actions (one frame per call; the state is updated in place).
3. Score each sample against the goal frame: the MSE at the last step (--score last) or the
   smallest MSE over the steps (--score min). Pick the sample with the lowest score.
4. A small tree search with `state.copy()` / `state.restore()`: snapshot the samples halfway,
   re-roll the second half --branches more times from the snapshot and keep the best leaf. Branch
   0 is the flat rollout of step 2, so the tree's best is never worse.

The last line printed is JSON (best sample, its score, every sample's score, ms per step) for scripts.
Needs only the base install (numpy, onnxruntime): no torch.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from svg_runtime import Predictor
from svg_runtime.context import conform_frames, load_context


def make_scene(frame_shape: tuple[int, int, int], n_context: int, horizon: int, speed: int = 3
               ) -> tuple[np.ndarray, np.ndarray]:
    """A bright square moving right by `speed` px a frame: context (1, n_context, C, H, W) and the goal
    frame (C, H, W) where the square is after `horizon` more frames, float32 in [0, 1]."""
    c, h, w = frame_shape
    side = h // 4

    def frame(t: int) -> np.ndarray:
        x = np.zeros(frame_shape, np.float32)
        left = min(2 + speed * t, w - side)
        x[:, h // 2 - side // 2:h // 2 + side - side // 2, left:left + side] = 1.0
        return x

    context = np.stack([frame(t) for t in range(n_context)])[None]
    return context, frame(n_context + horizon - 1)


def scores_from_errors(errors: np.ndarray, mode: str) -> np.ndarray:
    """Per-step MSE (N, H) -> one score per sample (N,): the last step's, or the smallest."""
    return errors[:, -1] if mode == "last" else errors.min(axis=1)


def roll(p: Predictor, state, n_steps: int, goal: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Step a state n_steps frames in place; returns the MSE to the goal of every entry at every step
    (N, n_steps) and the seconds spent in p.step."""
    errors = np.empty((state.batch, n_steps), np.float64)
    seconds = 0.0
    for t in range(n_steps):
        start = time.perf_counter()
        out = p.step(state, rng=rng)  # out.frame (N, C, H, W): valid until the next step
        seconds += time.perf_counter() - start
        errors[:, t] = ((out.frame - goal) ** 2).mean(axis=(1, 2, 3))
    return errors, seconds


def plan(p: Predictor, context: np.ndarray, goal: np.ndarray, n_samples: int, horizon: int, seed: int,
         mode: str = "last", branches: int = 3) -> dict:
    """Sample n_samples futures of context (1, T, C, H, W), score them against goal (C, H, W), and search a
    small tree; returns what the script prints as JSON."""
    rng = np.random.default_rng(seed)  # flat rollout: eps at step t = rng.standard_normal((N, z_dim)), in order
    state = p.fork(p.observe(context), n_samples)  # batch 1 -> n_samples
    split = horizon // 2
    head, head_s = roll(p, state, split, goal, rng)
    snapshot = state.copy()  # the samples after `split` frames
    tail, tail_s = roll(p, state, horizon - split, goal, rng)
    errors = np.concatenate([head, tail], axis=1)  # (N, H)
    scores = scores_from_errors(errors, mode)
    best = int(np.argmin(scores))
    leaves = [scores]  # branch 0: the flat rollout
    for _ in range(branches):
        state.restore(snapshot)
        tail, _ = roll(p, state, horizon - split, goal, rng)
        leaves.append(scores_from_errors(np.concatenate([head, tail], axis=1), mode))
    branch, sample = np.unravel_index(int(np.argmin(np.stack(leaves))), (branches + 1, n_samples))
    return {"best": best, "score": float(scores[best]), "scores": scores.tolist(),
            "ms_per_step": 1000 * (head_s + tail_s) / horizon, "samples": n_samples, "horizon": horizon,
            "seed": seed, "score_mode": mode,
            "tree": {"split": split, "branches": branches, "best_sample": int(sample), "best_branch": int(branch),
                     "score": float(leaves[branch][sample])}}


def load_frames(p: Predictor, path: str) -> np.ndarray:
    """The first video of a context file, fitted to the model: (1, T, C, H, W)."""
    ctx = load_context(path)
    return conform_frames(ctx.frames[:1], p.spec.frame_shape, where=ctx.source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="bundle directory written by `svg export`")
    parser.add_argument("--context", help="context frames (default: a synthetic moving square)")
    parser.add_argument("--goal", help="goal: the last frame of this file (needed with --context)")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", choices=("last", "min"), default="last")
    parser.add_argument("--branches", type=int, default=3, help="extra re-rolls of the second half (tree search)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    args = parser.parse_args()
    if args.samples < 1 or args.horizon < 2 or args.branches < 0:
        parser.error("need --samples >= 1, --horizon >= 2 and --branches >= 0")
    if args.context and not args.goal:
        parser.error("--context needs --goal (the frame to reach)")

    p = Predictor.load(args.bundle, threads=args.threads)
    if args.context:
        context, goal = load_frames(p, args.context), load_frames(p, args.goal)[0, -1]
        context, goal = (x.astype(np.float32) / 255 if x.dtype == np.uint8 else x for x in (context, goal))
    else:
        context, goal = make_scene(p.spec.frame_shape, n_context=5, horizon=args.horizon)
    result = plan(p, context, goal, args.samples, args.horizon, args.seed, args.score, args.branches)
    tree = result["tree"]
    print(f"{p.spec.kind} model, {args.samples} samples x {args.horizon} steps: {result['ms_per_step']:.2f} ms "
          f"per step ({p.backend.name}, batch {args.samples})")
    print(f"best sample {result['best']}: {args.score} MSE to the goal {result['score']:.5f} "
          f"(median {np.median(result['scores']):.5f})")
    print(f"tree search ({tree['branches']} re-rolls after step {tree['split']}): sample {tree['best_sample']}, "
          f"branch {tree['best_branch']}, MSE {tree['score']:.5f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
