"""Trajectory analyses on SM-MNIST (SVG sec. 4.2): the learned prior's sigma at bounces (Fig. 6)
and the distribution of post-collision velocities (Fig. 5).

Digits are tracked by cross-correlating each frame with the digit's template (its crop from a
conditioning frame): on a clean frame the correlation peaks exactly at the digit's position (the
window that equals the template is the only one reaching the Cauchy-Schwarz bound), and on a
blurry prediction it finds the blob. A velocity is the difference of two tracked positions.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from svg_core.data.smmnist import (
    SMMNISTConfig,
    render_frames,
    resize_digits,
    simulate_trajectories,
    velocity_distribution,
)
from svg_core.errors import SVGError

# --- synchronised test sequences -------------------------------------------------------------


def start_state(rng: np.random.Generator, cfg: SMMNISTConfig) -> tuple[np.ndarray, np.ndarray]:
    """Start positions and velocities (D, 2) drawn like the generator's (uniform position, start velocity)."""
    pos = rng.integers(0, cfg.max_position + 1, size=(cfg.num_digits, 2))
    grid, probs = velocity_distribution(cfg)
    vel = grid[rng.choice(len(grid), size=cfg.num_digits, p=probs)]
    return pos, vel


def pick_digits(rng: np.random.Generator, n_bank: int, n_videos: int, n_digits: int) -> np.ndarray:
    """(n_videos, n_digits) digit ids, distinct within a video."""
    return np.stack([rng.choice(n_bank, size=n_digits, replace=n_bank < n_digits) for _ in range(n_videos)])


def synchronised_set(digits: np.ndarray, cfg: SMMNISTConfig, n_videos: int, seed: int) -> dict[str, np.ndarray]:
    """n_videos sequences with different digits and ONE shared trajectory (the paper's Fig. 6 set).

    Returns frames (V, T, C, H, W) uint8, positions (T, D, 2), bounces (T, D) bool, templates
    (V, D, ds, ds) uint8 (each video's digit images).
    """
    rng = np.random.default_rng([seed, 0])
    pos, vel = start_state(rng, cfg)
    positions, _, bounces = simulate_trajectories(rng, cfg, pos, vel)
    bank = resize_digits(digits, cfg.digit_size)
    ids = pick_digits(np.random.default_rng([seed, 1]), len(bank), n_videos, cfg.num_digits)
    frames = np.stack([render_frames(bank[row], positions, cfg) for row in ids])
    return {"frames": frames, "positions": positions, "bounces": bounces, "templates": bank[ids]}


# --- tracking ----------------------------------------------------------------------------------


def track(frames: np.ndarray | torch.Tensor, templates: np.ndarray | torch.Tensor) -> np.ndarray:
    """Top-left (x, y) of the template in every frame by cross-correlation.

    frames (B, T, C, H, W) (channels averaged), templates (B, ds, ds) -> positions (B, T, 2) int64.
    """
    x = torch.as_tensor(np.asarray(frames)).float().mean(dim=2)  # (B, T, H, W)
    tpl = torch.as_tensor(np.asarray(templates)).float()  # (B, ds, ds)
    b, t, h, w = x.shape
    ds = tpl.shape[-1]
    # channels = videos: a grouped convolution correlates each video only with its own template
    corr = F.conv2d(x.transpose(0, 1), tpl[:, None], groups=b)  # (T, B, H-ds+1, W-ds+1)
    flat = corr.flatten(2).argmax(dim=2)  # (T, B)
    n_x = w - ds + 1
    pos = torch.stack([flat % n_x, flat // n_x], dim=-1)  # (T, B, 2) as (x, y)
    return pos.transpose(0, 1).numpy().astype(np.int64)


def crop_templates(frames: np.ndarray, positions: np.ndarray, digit_size: int) -> np.ndarray:
    """The digit (channel mean) cropped from frames (B, C, H, W) at positions (B, 2) -> (B, ds, ds)."""
    out = np.empty((len(frames), digit_size, digit_size), np.float32)
    for i, (f, (x, y)) in enumerate(zip(frames, positions.astype(int), strict=True)):
        out[i] = f.astype(np.float32).mean(axis=0)[y:y + digit_size, x:x + digit_size]
    return out


# --- sigma at bounces ----------------------------------------------------------------------------


def local_maxima(series: np.ndarray) -> np.ndarray:
    """Boolean mask of the strict interior local maxima of a 1-D series (endpoints are never maxima)."""
    s = np.asarray(series, np.float64)
    mask = np.zeros(len(s), bool)
    if len(s) >= 3:
        mask[1:-1] = (s[1:-1] > s[:-2]) & (s[1:-1] > s[2:])
    return mask


def bounce_hits(series: np.ndarray, events: np.ndarray, tolerance: int = 1, first: int = 0
                ) -> tuple[int, int, float]:
    """(hits, n_events, chance) for one series indexed by frame.

    An event at index e is a hit when the series has a local maximum within e +- tolerance. Events
    whose window leaves the series' interior, or before index `first` (e.g. the LSTM's warm-up), are
    not counted. chance: the fraction of the same indices u that would count as a hit, i.e. the hit
    rate of events placed at random.
    """
    is_max = local_maxima(series)
    n = len(is_max)

    def hit(e: int) -> bool:
        return bool(is_max[max(e - tolerance, 0):e + tolerance + 1].any())

    lo, hi = max(tolerance, 1, first), min(n - tolerance, n - 1)  # indices u in [lo, hi)
    valid = [int(e) for e in events if lo <= e < hi]
    interior = range(lo, hi)
    chance = float(np.mean([hit(u) for u in interior])) if len(interior) else float("nan")
    return sum(hit(e) for e in valid), len(valid), chance


def event_frames(bounces: np.ndarray) -> np.ndarray:
    """Frame indices where the uncertainty enters: a wall hit drawn at frame t changes the velocity
    from t to t + 1, so frame t + 1 is the first unpredictable one. bounces (T, D) -> sorted indices."""
    return np.unique(np.nonzero(np.asarray(bounces).any(axis=1))[0] + 1)


def wall_events(positions: np.ndarray, max_position: int, slack: int = 1) -> np.ndarray:
    """Event frames of a tracked trajectory (T, 2): the frame after each first frame of a run of
    frames where the digit touches a wall (within `slack` pixels)."""
    p = np.asarray(positions)
    at_wall = ((p <= slack) | (p >= max_position - slack)).any(axis=1)
    starts = np.nonzero(at_wall & ~np.concatenate([[False], at_wall[:-1]]))[0]
    return starts + 1


def sigma_at_bounces(sampler, digits: np.ndarray, cfg: SMMNISTConfig, n_traj: int, n_videos: int,
                     n_past: int, seed: int) -> dict:
    """Fig. 6 on true frames and on the model's own samples.

    True frames: for each of n_traj trajectories, n_videos digit sets share it; the prior reads the
    true frames (sampler.prior_sigma_on_frames); the mean over videos and z of sigma is one series
    per trajectory, scored against the true wall hits. Own samples: condition on n_past true frames,
    sample the rest once per video, track the digit, and score each sample's own sigma series
    against the wall hits found in that sample (1-digit sets only).
    """
    series, hits_true, hits_own = [], [0, 0, []], [0, 0, []]
    for k in range(n_traj):
        data = synchronised_set(digits, cfg, n_videos, seed + k)
        frames = data["frames"].astype(np.float32) / 255.0
        sig = sampler.prior_sigma_on_frames(frames).mean(axis=2)  # (V, T-1): frames 1..T-1
        mean = np.concatenate([[np.nan], sig.mean(axis=0)])  # index = frame index (0-based)
        std = np.concatenate([[np.nan], sig.std(axis=0)])
        events = event_frames(data["bounces"])
        h, n, chance = bounce_hits(mean[1:], events - 1, first=n_past - 1)  # count from frame n_past + 1 on
        _add(hits_true, h, n, chance)
        entry = {"frames": np.arange(1, len(mean) + 1), "mean": mean, "std": std,
                 "bounces": [np.nonzero(data["bounces"][:, d])[0] + 1 for d in range(cfg.num_digits)],
                 "label": f"trajectory {k}: prior on true frames, {n_videos} digits", "warmup": n_past}
        if cfg.num_digits == 1:
            own, own_sig = _own_samples(sampler, frames, data, cfg, n_past, seed + k)
            for v in range(len(own)):
                _add(hits_own, *bounce_hits(own_sig[v], wall_events(own[v], cfg.max_position) - n_past))
            entry["own_mean"], entry["own_std"] = own_sig.mean(axis=0), own_sig.std(axis=0)
            entry["own_frames"] = np.arange(n_past + 1, frames.shape[1] + 1)
        series.append(entry)
    return {"series": series, "true_frames": _rate(hits_true), "own_samples": _rate(hits_own)}


def _own_samples(sampler, frames: np.ndarray, data: dict, cfg: SMMNISTConfig, n_past: int, seed: int):
    """Tracked positions (V, T, 2) and prior sigma series (V, T - n_past) of one sample per video."""
    v, t = frames.shape[:2]
    eps = np.random.default_rng([seed, 2]).standard_normal((v, 1, t - n_past, sampler.z_dim), dtype=np.float32)
    out = sampler.sample(frames[:, :n_past], eps)
    video = np.concatenate([frames[:, :n_past], out.frames[:, 0]], axis=1)
    pos = track(video, data["templates"][:, 0])
    return pos, out.sigma[:, 0].mean(axis=2)


def _add(acc: list, hits: int, n: int, chance: float) -> None:
    acc[0] += hits
    acc[1] += n
    acc[2].append(chance)


def _rate(acc: list) -> dict:
    return {"hits": acc[0], "bounces": acc[1], "fraction": acc[0] / acc[1] if acc[1] else float("nan"),
            "chance": float(np.nanmean(acc[2])) if acc[2] else float("nan")}


# --- velocity distributions ------------------------------------------------------------------------


def velocity_histograms(positions: np.ndarray, max_speed: int) -> np.ndarray:
    """Tracked positions (S, T, 2) -> per step t >= 1 probabilities (T-1, 2m+2) over the (2m+1)^2
    integer (dx, dy) grid, flattened as [dy + m, dx + m], plus one last bin for |d| > m."""
    d = np.diff(np.asarray(positions), axis=1)  # (S, T-1, 2)
    m, side = max_speed, 2 * max_speed + 1
    inside = (np.abs(d) <= m).all(axis=2)
    bins = np.where(inside, (d[..., 1] + m) * side + (d[..., 0] + m), side * side)  # (S, T-1)
    counts = np.stack([np.bincount(bins[:, t], minlength=side * side + 1) for t in range(bins.shape[1])])
    return counts / positions.shape[0]


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """0.5 * sum |p - q| over the last axis."""
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum(axis=-1)


def find_collision_start(cfg: SMMNISTConfig, n_past: int, seed: int, earliest: int, latest: int):
    """A start (positions, velocities) whose first wall hit falls in frames [earliest, latest]."""
    for attempt in range(10_000):
        rng = np.random.default_rng([seed, attempt])
        pos, vel = start_state(rng, cfg)
        _, _, bounces = simulate_trajectories(rng, cfg, pos, vel)
        hits = np.nonzero(bounces.any(axis=1))[0]
        if (vel != 0).any() and len(hits) and earliest <= hits[0] <= latest:
            return pos, vel, int(hits[0])
    raise SVGError(f"no trajectory with a first wall hit in frames {earliest}..{latest}: widen the range")


def velocity_experiment(sampler, digits: np.ndarray, cfg: SMMNISTConfig, n_past: int, n_digits: int,
                        n_samples: int, seed: int, index: int) -> dict:
    """Fig. 5 for one trajectory whose first wall hit comes after the conditioning frames.

    Truth: n_digits * n_samples sequences share the start but draw their own post-collision
    velocities (and digits); model: n_digits digits conditioned on the shared first n_past frames,
    n_samples samples each. Both are tracked the same way. A second independent truth set of the
    same size gives the total-variation noise floor.
    """
    if cfg.num_digits != 1:
        raise SVGError("the velocity analysis tracks one digit: use a 1-digit model and --num-digits 1")
    bank = resize_digits(digits, cfg.digit_size)
    pos0, vel0, hit = find_collision_start(cfg, n_past, seed * 1000 + index, n_past + 1, cfg.seq_len - 4)
    n_total = n_digits * n_samples

    def truth(stream: int) -> np.ndarray:
        ids = pick_digits(np.random.default_rng([seed, index, stream, 0]), len(bank), n_total, 1)
        videos, tpl = [], bank[ids[:, 0]]
        for j in range(n_total):
            p, _, _ = simulate_trajectories(np.random.default_rng([seed, index, stream, j + 1]), cfg, pos0, vel0)
            videos.append(render_frames(bank[ids[j]], p, cfg))
        return track(np.stack(videos), tpl)[:, n_past - 1:]

    true_pos, floor_pos = truth(1), truth(2)
    ids = pick_digits(np.random.default_rng([seed, index, 3, 0]), len(bank), n_digits, 1)
    p, _, _ = simulate_trajectories(np.random.default_rng([seed, index, 3, 1]), cfg, pos0, vel0)
    context = np.stack([render_frames(bank[i], p[:n_past], replace(cfg, seq_len=n_past)) for i in ids])
    horizon = cfg.seq_len - n_past
    eps = np.random.default_rng([seed, index, 4]).standard_normal((n_digits, n_samples, horizon, sampler.z_dim),
                                                                  dtype=np.float32)
    out = sampler.sample(context.astype(np.float32) / 255.0, eps)  # (D, S, H, C, H, W)
    last = np.repeat(context[:, None, -1:].astype(np.float32) / 255.0, n_samples, axis=1)
    video = np.concatenate([last, out.frames], axis=2).reshape(n_total, horizon + 1, *out.frames.shape[3:])
    model_pos = track(video, np.repeat(bank[ids[:, 0]], n_samples, axis=0))
    p_model, p_true = velocity_histograms(model_pos, cfg.max_speed), velocity_histograms(true_pos, cfg.max_speed)
    p_floor = velocity_histograms(floor_pos, cfg.max_speed)
    tv, tv_floor = total_variation(p_model, p_true), total_variation(p_floor, p_true)
    after = np.arange(horizon) + n_past >= hit + 1  # predicted frames after the first wall hit
    return {"frames": np.arange(n_past + 1, cfg.seq_len + 1), "collision": hit + 1, "model": p_model,
            "truth": p_true, "tv": tv, "tv_floor": tv_floor, "tv_after": float(tv[after].mean()),
            "tv_floor_after": float(tv_floor[after].mean()), "outside_model": float(p_model[:, -1].mean())}
