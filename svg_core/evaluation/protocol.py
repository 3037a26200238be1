"""The best-of-N evaluation protocol (SVG sec. 4; SRVP's test.py) on a fixed test set.

For each test video draw N samples of the future; score every predicted frame (PSNR, SSIM);
average each sample's scores over the predicted frames; keep, INDEPENDENTLY PER METRIC, the best
sample (max PSNR, max SSIM), the worst, and the mean over the N samples. Report the mean over
videos with a 95% interval, 1.96 * std / sqrt(n_videos) (std with ddof = 1), both for the frame
average and per time step (the per-step curve of the sample chosen on the average). Two trivial
predictions are always scored alongside: repeating the last conditioning frame, and all black.
Sample diversity is the mean pairwise MSE between the N samples of a video (0 for a collapsed prior).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from svg_core.errors import SVGError
from svg_core.evaluation.metrics import MSE_FLOOR, PSNR_CAP_DB, SSIM_WINDOWS, frame_metrics
from svg_core.evaluation.samplers import Sampler, draw_eps

log = logging.getLogger("svg")
METRICS = ("psnr", "ssim")  # all higher-is-better; LPIPS (lower is better) is not supported yet
HIGHER_IS_BETTER = {"psnr": True, "ssim": True}
N_RANDOM_KEPT = 3  # random samples kept per kept video for the sample grids


@dataclass(frozen=True)
class EvalOptions:
    """Options of one evaluation; stored in results.json next to the numbers they produced."""

    n_samples: int = 100
    cond: int | None = None  # conditioning frames; None: the model's n_past
    horizon: int | None = None  # predicted frames; None: the rest of each test video
    ssim_window: str = "gaussian"  # gaussian (11x11, sigma 1.5) | uniform7 (scikit-image's default)
    batch_videos: int = 4  # videos per sampling call (the batch is batch_videos * n_samples)
    seed: int = 0
    max_videos: int | None = None  # evaluate only the first videos of the test set
    n_keep: int = 4  # videos whose samples are kept for the sample grids
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise SVGError(f"--samples must be >= 1, got {self.n_samples}")
        if self.batch_videos < 1:
            raise SVGError(f"--batch-videos must be >= 1, got {self.batch_videos}")
        if self.ssim_window not in SSIM_WINDOWS:
            raise SVGError(f"unknown --ssim-window {self.ssim_window!r}: choose one of {', '.join(SSIM_WINDOWS)}")
        if self.cond is not None and self.cond < 1:
            raise SVGError(f"--cond must be >= 1, got {self.cond}")
        if self.horizon is not None and self.horizon < 1:
            raise SVGError(f"--horizon must be >= 1, got {self.horizon}")
        if self.max_videos is not None and self.max_videos < 1:
            raise SVGError(f"--max-videos must be >= 1, got {self.max_videos}")
        if self.seed < 0:
            raise SVGError(f"--seed must be >= 0, got {self.seed}")


@dataclass
class EvalOutput:
    """results (the JSON-able report), per-video/sample/step scores, and the samples kept for grids."""

    results: dict[str, Any]
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> (V, N, H)
    kept: dict[str, np.ndarray] = field(default_factory=dict)


# --- bookkeeping (pure numpy) ------------------------------------------------------------------


def interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 and the 95% half-width 1.96 * std(ddof=1) / sqrt(n) (0 when n == 1)."""
    values = np.asarray(values, np.float64)
    n = values.shape[0]
    half = 1.96 * values.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(values.shape[1:])
    return values.mean(axis=0), half


def select_samples(values: np.ndarray, higher_is_better: bool) -> dict[str, Any]:
    """values (V, N, H) of one metric -> per video (V, H) curves of the best and worst sample (chosen
    on the average over the H predicted frames) and the mean over samples, and the chosen indices."""
    values = np.asarray(values, np.float64)
    avg = values.mean(axis=2)  # (V, N)
    best = avg.argmax(axis=1) if higher_is_better else avg.argmin(axis=1)
    worst = avg.argmin(axis=1) if higher_is_better else avg.argmax(axis=1)
    rows = np.arange(values.shape[0])
    return {"best": values[rows, best], "worst": values[rows, worst], "mean": values.mean(axis=1),
            "best_index": best, "worst_index": worst}


def curve_summary(per_video: np.ndarray) -> dict[str, Any]:
    """per_video (V, H) -> mean over frames and videos with its interval, and per-step mean and interval."""
    avg_mean, avg_half = interval(np.asarray(per_video).mean(axis=1))
    step_mean, step_half = interval(per_video)
    return {"mean": float(avg_mean), "ci95": float(avg_half), "per_step": step_mean.tolist(),
            "per_step_ci95": step_half.tolist()}


def summarise(scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """{metric: (V, N, H)} -> {metric: {best, worst, mean: curve_summary}}."""
    out = {}
    for name, values in scores.items():
        sel = select_samples(values, HIGHER_IS_BETTER[name])
        out[name] = {k: curve_summary(sel[k]) for k in ("best", "worst", "mean")}
    return out


def pairwise_mse(samples: np.ndarray | torch.Tensor) -> np.ndarray:
    """Mean pairwise per-pixel MSE between the N samples of each video: (V, N, H, C, H, W) -> (V, H).

    Uses sum_{i<j} |a_i - a_j|^2 = N sum_i |a_i - mean|^2, so it costs one pass; 0 when N == 1.
    """
    x = torch.as_tensor(samples).double()
    n = x.shape[1]
    if n < 2:
        return np.zeros(x.shape[0:1] + x.shape[2:3])
    var = x.var(dim=1, unbiased=False).flatten(2).mean(dim=2)  # (V, H)
    return (2.0 * n / (n - 1) * var).numpy()


def baseline_predictions(context: torch.Tensor, horizon: int) -> dict[str, torch.Tensor]:
    """The trivial predictions (V, H, C, H, W): repeat the last conditioning frame; all black."""
    last = context[:, -1:].expand(-1, horizon, -1, -1, -1)
    return {"copy_last": last, "black": torch.zeros_like(last)}


# --- the evaluation loop -----------------------------------------------------------------------


def resolve_lengths(opts: EvalOptions, sampler: Sampler, seq_len: int) -> tuple[int, int]:
    """(cond, horizon) from the options, the model's training n_past and the test videos' length."""
    cond = opts.cond if opts.cond is not None else sampler.n_past
    if cond is None:
        raise SVGError("the number of conditioning frames is unknown for this model: pass --cond K")
    horizon = opts.horizon if opts.horizon is not None else seq_len - cond
    if cond + horizon > seq_len or horizon < 1:
        raise SVGError(f"--cond {cond} + --horizon {horizon} needs videos of {cond + horizon} frames but the test "
                       f"set has {seq_len}: lower --horizon or rebuild the test set with --length")
    return cond, horizon


def check_frames(frames: np.ndarray, sampler: Sampler) -> None:
    if frames.ndim != 5:
        raise SVGError(f"test frames must be (videos, T, C, H, W), got shape {frames.shape}")
    if tuple(frames.shape[2:]) != tuple(sampler.frame_shape):
        raise SVGError(f"test frames are {frames.shape[2:]} (C, H, W) but the model takes {sampler.frame_shape}: "
                       "build a test set with the model's image size and channels")


def evaluate(sampler: Sampler, frames: np.ndarray, opts: EvalOptions, progress: bool = True) -> EvalOutput:
    """Run the protocol on test frames (V, T, C, H, W) (uint8 or float in [0, 1]) with a sampler."""
    from svg_runtime.progress import progress_bar as tqdm  # plain lines, not \r floods, in logs

    check_frames(frames, sampler)
    n_videos = len(frames) if opts.max_videos is None else min(opts.max_videos, len(frames))
    cond, horizon = resolve_lengths(opts, sampler, frames.shape[1])
    n_samples = opts.n_samples if sampler.z_dim > 0 else 1  # a deterministic model has one future
    if n_samples != opts.n_samples:
        log.info("deterministic model: drawing 1 sample per video instead of %d", opts.n_samples)
    acc: dict[str, list[np.ndarray]] = {}
    kept: dict[str, list[np.ndarray]] = {}
    t0, n_capped = time.perf_counter(), 0
    bar = tqdm(total=n_videos, disable=not progress, desc="eval", unit="video")
    for start in range(0, n_videos, opts.batch_videos):
        idx = np.arange(start, min(start + opts.batch_videos, n_videos))
        gt = _as_float(frames[idx, :cond + horizon])  # (V, cond + H, C, H, W)
        eps = draw_eps(opts.seed, idx, n_samples, horizon, sampler.z_dim)
        out = sampler.sample(gt[:, :cond].numpy(), eps)
        pred = torch.from_numpy(out.frames)  # (V, N, H, C, H, W)
        target = gt[:, cond:]
        m = frame_metrics(pred, target[:, None].expand_as(pred), opts.ssim_window)
        n_capped += int((m["mse"] <= MSE_FLOOR).sum())
        _append(acc, {"psnr": m["psnr"].numpy(), "ssim": m["ssim"].numpy(), "diversity": pairwise_mse(pred),
                      "sigma": out.sigma.mean(axis=(1, 3)) if out.sigma.size else np.zeros((len(idx), horizon))})
        for name, pred_b in baseline_predictions(gt[:, :cond], horizon).items():
            mb = frame_metrics(pred_b, target, opts.ssim_window)
            _append(acc, {f"{name}.psnr": mb["psnr"].numpy(), f"{name}.ssim": mb["ssim"].numpy()})
        _keep(kept, gt, pred, m["psnr"].numpy(), idx, opts.n_keep)
        bar.update(len(idx))
    bar.close()
    seconds = time.perf_counter() - t0
    arrays = {k: np.concatenate(v) for k, v in acc.items()}
    scores = {k: arrays[k] for k in METRICS}
    results = {
        "options": asdict(opts) | {"n_samples_drawn": n_samples},
        "model": sampler.describe(),
        "cond": cond, "horizon": horizon, "n_videos": n_videos,
        "frames": list(range(cond + 1, cond + horizon + 1)),  # 1-based frame numbers of the predictions
        "train_horizon": sampler.train_horizon, "train_n_past": sampler.n_past,
        "metrics": summarise(scores),
        "baselines": {b: {k: curve_summary(arrays[f"{b}.{k}"]) for k in METRICS} for b in ("copy_last", "black")},
        "diversity": curve_summary(arrays["diversity"]) | {"what": "mean pairwise per-pixel MSE between samples"},
        "prior_sigma": curve_summary(arrays["sigma"]) | {"what": "prior sigma, mean over z dims and samples"},
        "protocol": protocol_notes(opts, n_capped),
        "timing": {"seconds": round(seconds, 2), "frames_per_s": round(n_videos * n_samples * horizon / seconds, 1)},
    }
    return EvalOutput(results=results, scores=scores,
                      kept={k: np.concatenate(v) for k, v in kept.items()})


def protocol_notes(opts: EvalOptions, n_capped: int) -> dict[str, Any]:
    """How the numbers were computed: part of every results.json."""
    window = ("11x11 Gaussian window, sigma 1.5, population covariance" if opts.ssim_window == "gaussian"
              else "7x7 uniform window, sample covariance (scikit-image's default)")
    return {
        "psnr": f"10 log10(1 / MSE) per frame and channel, data range 1; MSE clamped at {MSE_FLOOR:g}, so PSNR is "
                f"capped at {PSNR_CAP_DB:.0f} dB",
        "psnr_capped_frames": n_capped,
        "ssim": f"{window}, K1 0.01, K2 0.03, data range 1, mean over the window-valid pixels and channels",
        "best": "per metric independently: the sample with the best metric averaged over the predicted frames",
        "worst": "per metric: the sample with the worst frame-averaged metric",
        "mean": "mean over the samples of each video",
        "aggregate": "mean over videos; ci95 = 1.96 * std(ddof=1) / sqrt(n_videos)",
        "baselines": "copy_last: the last conditioning frame repeated; black: all-zero frames",
        "lpips": "not computed (PSNR and SSIM only)",
    }


def _as_float(frames: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(frames))
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _append(acc: dict[str, list[np.ndarray]], values: dict[str, np.ndarray]) -> None:
    for k, v in values.items():
        acc.setdefault(k, []).append(np.asarray(v))


def _keep(kept: dict[str, list[np.ndarray]], gt: torch.Tensor, pred: torch.Tensor, psnr: np.ndarray,
          idx: np.ndarray, n_keep: int) -> None:
    """Keep ground truth, the best-PSNR sample and the first random samples of the first n_keep videos."""
    rows = np.nonzero(idx < n_keep)[0]
    if len(rows) == 0:
        return
    best = torch.as_tensor(psnr[rows].mean(axis=2).argmax(axis=1))
    rows_t = torch.as_tensor(rows)
    to8 = lambda t: (t.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()  # noqa: E731
    _append(kept, {"gt": to8(gt[rows_t]), "best_psnr": to8(pred[rows_t, best]),
                   "random": to8(pred[rows_t, :N_RANDOM_KEPT]), "video_index": idx[rows]})
