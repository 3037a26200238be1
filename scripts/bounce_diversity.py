"""Do a model's samples differ after a bounce? (issue 16)

For each test video whose digit hits a wall among the predicted frames (SM-MNIST test sets record
`bounces`): the mean pairwise per-pixel MSE between N samples over the predicted frames before the
first hit, and over those from two frames after it on.

    python scripts/bounce_diversity.py RUN_OR_CHECKPOINT --data test1.npz [--samples 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from svg_core import sampling
from svg_core.checkpoint import build_model, load_checkpoint, resolve


def pairwise_mse(x: np.ndarray) -> float:
    """Mean over frames of the mean pairwise squared distance (per pixel) between samples x (N, K, P)."""
    centred = x - x.mean(axis=0, keepdims=True)
    return float(2 * (centred ** 2).mean(axis=-1).sum(axis=0).mean() / (x.shape[0] - 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--data", required=True)
    ap.add_argument("--cond", type=int, default=5)
    ap.add_argument("--horizon", type=int, default=20)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build_model(load_checkpoint(resolve(a.run))).eval()
    data = np.load(a.data)
    frames = torch.from_numpy(data["frames"].astype(np.float32) / 255)
    hits_all = data["bounces"].any(axis=-1)  # (V, T): a digit hit a wall at frame t
    with torch.inference_mode():
        out = sampling.generate(model, frames[:, :a.cond], a.horizon, a.samples).frames
    out = out.reshape(len(frames), a.samples, a.horizon, -1).numpy()
    before, after = [], []
    for v in range(len(frames)):
        hits = np.flatnonzero(hits_all[v, a.cond:a.cond + a.horizon])
        if len(hits) and 2 <= hits[0] < a.horizon - 2:
            before.append(pairwise_mse(out[v, :, :hits[0]]))
            after.append(pairwise_mse(out[v, :, hits[0] + 2:]))
    b, f = np.array(before), np.array(after)
    print(json.dumps({"run": a.run, "videos_with_a_bounce": len(b), "diversity_before_first_bounce": float(b.mean()),
                      "diversity_after_first_bounce": float(f.mean()),
                      "videos_more_diverse_after": float((f > b).mean())}, indent=1))


if __name__ == "__main__":
    main()
