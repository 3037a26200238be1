"""The paper's figures with matplotlib (Agg, PNG): metric curves (Fig. 7), sample grids (Fig. 3),
the learned prior's sigma around bounces (Fig. 6) and post-collision velocity distributions (Fig. 5).

Every function takes plain numbers (results.json dictionaries, numpy arrays) and writes one PNG
atomically; none runs a model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from svg_runtime.atomic import atomic_path

METRIC_LABELS = {"ssim": "SSIM", "psnr": "PSNR (dB)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    finally:
        _pyplot().close(fig)
    return path


def _band(ax, x, curve: dict[str, Any], label: str, **style) -> None:
    y, half = np.asarray(curve["per_step"]), np.asarray(curve["per_step_ci95"])
    (line,) = ax.plot(x, y, label=label, **style)
    ax.fill_between(x, y - half, y + half, color=line.get_color(), alpha=0.2, linewidth=0)


def _integer_ticks(ax) -> None:
    """Frame numbers are integers: no 2.5 on a frame axis."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_curves(results: Sequence[dict[str, Any]], labels: Sequence[str], path: str | os.PathLike,
                which: str = "best") -> Path:
    """SSIM and PSNR per predicted frame, one line per run (its `which`-of-N sample) with 95% bands,
    the first run's copy-last and all-black baselines, and a vertical line at the training horizon."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("ssim", "psnr"), strict=True):
        for res, label in zip(results, labels, strict=True):
            n = res["options"]["n_samples_drawn"]
            tag = f"{label} ({which} of {n})" if n > 1 else label
            _band(ax, res["frames"], res["metrics"][metric][which], tag)
        base = results[0]
        _band(ax, base["frames"], base["baselines"]["copy_last"][metric], "copy last frame", color="grey",
              linestyle="--")
        _band(ax, base["frames"], base["baselines"]["black"][metric], "all black", color="black", linestyle=":")
        horizons = {r.get("train_horizon") for r in results} - {None}
        for h in sorted(horizons):
            ax.axvline(h, color="k", linewidth=0.8, alpha=0.6)
        ax.set_xlabel("frame number (conditioning: 1.." + str(base["cond"]) + ")")
        _integer_ticks(ax)
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    n_videos = results[0]["n_videos"]
    fig.suptitle(f"{n_videos} test videos, mean with 95% interval; vertical line: training horizon")
    return _save(fig, path)


def sample_grid(rows: Sequence[tuple[str, np.ndarray]], cond: int, path: str | os.PathLike,
                title: str = "") -> Path:
    """Rows of videos (T, C, H, W) uint8 side by side in time; the first `cond` columns are the
    conditioning frames (green frame). Rows shorter than the longest are padded on the left
    (predictions only: their first frame lines up with frame cond + 1)."""
    plt = _pyplot()
    t_max = max(v.shape[0] for _, v in rows)
    c, h, w = rows[0][1].shape[1:]
    pad = 2
    canvas = np.full((len(rows) * (h + pad) + pad, t_max * (w + pad) + pad, 3), 255, np.uint8)
    for r, (_, video) in enumerate(rows):
        offset = t_max - video.shape[0]
        for t in range(video.shape[0]):
            img = video[t].transpose(1, 2, 0)
            img = np.repeat(img, 3, axis=2) if c == 1 else img
            y, x = pad + r * (h + pad), pad + (t + offset) * (w + pad)
            if t + offset < cond:
                canvas[y - 1:y + h + 1, x - 1:x + w + 1] = (40, 180, 60)
            canvas[y:y + h, x:x + w] = img
    fig, ax = plt.subplots(figsize=(max(6.0, t_max * 0.55), max(2.0, len(rows) * 0.6)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(len(rows))], [label for label, _ in rows])
    ax.set_xticks([pad + t * (w + pad) + w / 2 for t in range(t_max)], [str(t + 1) for t in range(t_max)],
                  fontsize=7)
    ax.set_xlabel("frame number (green: conditioning frames)")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_sigma(series: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Fig. 6: the prior's sigma (mean over z) per frame, mean +- one std over videos, one panel per
    entry {"frames", "mean", "std", "bounces" (frame numbers per digit), "label", optional "warmup"
    (leading frames left out of the y range) and "own_frames", "own_mean", "own_std"}."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(series), 1, figsize=(11, 2.6 * len(series)), squeeze=False, layout="constrained")
    colors = ("tab:red", "tab:blue", "tab:green")
    for ax, s in zip(axes[:, 0], series, strict=True):
        x, y, sd = np.asarray(s["frames"]), np.asarray(s["mean"]), np.asarray(s["std"])
        ax.plot(x, y, color="k", linewidth=1)
        ax.fill_between(x, y - sd, y + sd, color="grey", alpha=0.3, linewidth=0, label="on true frames")
        if "own_mean" in s:
            xo, yo, so = (np.asarray(s[k]) for k in ("own_frames", "own_mean", "own_std"))
            ax.plot(xo, yo, color="tab:orange", linewidth=1)
            ax.fill_between(xo, yo - so, yo + so, color="tab:orange", alpha=0.2, linewidth=0,
                            label="on its own samples (own wall hits differ)")
            ax.legend(fontsize=7, loc="upper right")
        for d, frames in enumerate(s["bounces"]):
            for f in frames:
                ax.axvline(f, color=colors[d % len(colors)], linewidth=0.8, alpha=0.8)
        ax.set_ylabel("prior sigma")
        skip = int(s.get("warmup", 0))  # the LSTM's first steps would squash the interesting range
        shown = np.concatenate([y[skip:] - sd[skip:], y[skip:] + sd[skip:], np.asarray(s.get("own_mean", []))])
        shown = shown[np.isfinite(shown)]
        if shown.size:
            pad = 0.1 * (shown.max() - shown.min()) + 1e-6
            ax.set_ylim(shown.min() - pad, shown.max() + pad)
        ax.set_title(s.get("label", ""), fontsize=9)
        _integer_ticks(ax)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("frame number t (sigma of p(z_t | x_1..t-1)); vertical lines: wall hits")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_velocity(panels: Sequence[dict[str, Any]], path: str | os.PathLike, max_speed: int = 4,
                  max_columns: int = 15) -> Path:
    """Fig. 5: per trajectory two rows (model, ground truth) of (dx, dy) histograms over time.

    panels: {"frames" (H,), "model" (H, K), "truth" (H, K), "collision" frame number, "label",
    "tv" (H,)}: probabilities over K = (2m+1)^2 + 1 bins, the grid flattened as [dy + m, dx + m]
    and a last bin for |d| > m (as trajectories.velocity_histograms)."""
    plt = _pyplot()
    n_cols = min(max_columns, max(len(p["frames"]) for p in panels))
    fig, axes = plt.subplots(2 * len(panels), n_cols, figsize=(1.1 * n_cols, 3.0 * len(panels)),
                             squeeze=False, layout="constrained")
    ext = (-max_speed - 0.5, max_speed + 0.5, max_speed + 0.5, -max_speed - 0.5)
    side = 2 * max_speed + 1
    ticks = [-max_speed, 0, max_speed]
    # one colour scale for every panel, so that the colour bar reads on all of them
    vmax = max(float(np.max(np.asarray(p[key])[:, :side * side])) for p in panels for key in ("model", "truth"))
    image = None
    for k, p in enumerate(panels):
        for j in range(n_cols):
            for r, key in enumerate(("model", "truth")):
                ax = axes[2 * k + r, j]
                bottom = 2 * k + r == 2 * len(panels) - 1
                ax.set_xticks(ticks, [str(v) for v in ticks] if bottom else [], fontsize=6)
                ax.set_yticks(ticks, [str(v) for v in ticks] if j == 0 else [], fontsize=6)
                if j >= len(p["frames"]):
                    ax.axis("off")
                    continue
                image = ax.imshow(np.asarray(p[key][j])[:side * side].reshape(side, side), cmap="viridis",
                                  extent=ext, vmin=0, vmax=vmax, interpolation="nearest")
                if r == 0:
                    mark = " *" if p["frames"][j] == p["collision"] + 1 else ""
                    ax.set_title(f"t={p['frames'][j]}{mark}\nTV {p['tv'][j]:.2f}", fontsize=7)
                if j == 0:
                    ax.set_ylabel(f"{p['label']}\n{'model' if r == 0 else 'truth'}\ndy", fontsize=7)
                if bottom:
                    ax.set_xlabel("dx", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, pad=0.01, label="probability of (dx, dy)")
    fig.suptitle("distribution of the digit's velocity (dx, dy) per predicted frame; * first frame after the "
                 "wall hit; TV: total variation distance model vs truth", fontsize=9)
    return _save(fig, path)
