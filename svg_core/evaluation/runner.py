"""What the `svg eval*` commands run: load, evaluate, write files and figures.

Output of `run_eval` (one directory per evaluated run):
    results.json   the numbers, the options that produced them, the model and the test set
    scores.npz     psnr, ssim per (video, sample, predicted frame)
    samples.npz    ground truth, best-PSNR and random samples of the first videos (uint8)
    curves.png     SSIM and PSNR per frame (best of N, 95% bands, baselines, training horizon)
    samples.png    sample grid: ground truth, best-PSNR sample, random samples
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from svg_core.data.smmnist import (  # noqa: F401 (build_smmnist_test_set: re-exported)
    SMMNISTConfig,
    build_smmnist_test_set,
    config_of,
    load_npz,
)
from svg_core.errors import SVGError
from svg_core.evaluation import figures
from svg_core.evaluation.protocol import EvalOptions, EvalOutput, evaluate
from svg_core.evaluation.samplers import load_sampler
from svg_runtime.atomic import atomic_write_text, save_npz
from svg_runtime.hashing import sha256_file

log = logging.getLogger("svg")


def load_test_frames(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Frames (V, T, C, H, W) of a test-set .npz and a description of the file (path, sha256, config)."""
    data = load_npz(path)
    if "frames" not in data:
        raise SVGError(f"{path} has no 'frames' array: build a test set with `svg data smmnist --out FILE`")
    info: dict[str, Any] = {"path": str(path), "sha256": sha256_file(Path(path)), "shape": list(data["frames"].shape)}
    if "config" in data:
        info["config"] = config_of(data).to_dict()
    if "seed" in data:
        info["seed"] = int(data["seed"])
    return data["frames"], info


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # NaN (e.g. a rate with no events) is not JSON: write null
    text = json.dumps(_finite(json.loads(json.dumps(obj, default=_jsonable))), indent=2, allow_nan=False)
    atomic_write_text(path, text + "\n")
    return path


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    return o


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def check_finite_metrics(metrics: dict[str, Any], model_path: str | os.PathLike) -> None:
    """Raise when a metric is NaN or infinite: the model's samples were (a result nobody should trust)."""
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else key)
        elif isinstance(node, (float, np.floating)) and not np.isfinite(node):
            raise SVGError(f"metric {where} of {model_path} is {node}: the model's samples are not finite (NaN "
                           "weights or a diverged run); evaluate an earlier checkpoint or retrain")
    walk(metrics, "")


def run_eval(model_path: str | os.PathLike, data_path: str | os.PathLike, out_dir: str | os.PathLike,
             opts: EvalOptions, progress: bool = True, figures_too: bool = True) -> EvalOutput:
    """Evaluate a checkpoint or a bundle on a test set; write results.json, scores, samples and figures."""
    out_dir = Path(out_dir)
    frames, data_info = load_test_frames(data_path)
    sampler = load_sampler(model_path, opts.device)
    output = evaluate(sampler, frames, opts, progress=progress)
    check_finite_metrics(output.results["metrics"], model_path)
    output.results["data"] = data_info
    out_dir.mkdir(parents=True, exist_ok=True)
    save_npz(out_dir / "scores.npz", {k: v.astype(np.float32) for k, v in output.scores.items()})
    save_npz(out_dir / "samples.npz", output.kept | {"cond": np.asarray(output.results["cond"])})
    write_json(out_dir / "results.json", output.results)
    if figures_too:
        label = output.results["model"]["kind"].upper()
        figures.plot_curves([output.results], [label], out_dir / "curves.png")
        grid_figure([out_dir / "results.json"], [label], out_dir / "samples.png")
    log.info("wrote %s", out_dir / "results.json")
    return output


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """A results.json (or the directory holding it)."""
    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SVGError(f"cannot read evaluation results {p} ({e}): run `svg eval ... --out DIR` first") from e


def compare(paths: Sequence[str | os.PathLike], out: str | os.PathLike, labels: Sequence[str] | None = None,
            grid: str | os.PathLike | None = None, which: str = "best") -> list[Path]:
    """One curves figure for several results.json (e.g. LP, FP, det), and optionally one sample grid."""
    if not paths:
        raise SVGError("give at least one results.json to plot")
    if which not in ("best", "worst", "mean"):
        raise SVGError(f"unknown --which {which!r}: choose best, worst or mean")
    results = [read_results(p) for p in paths]
    labels = list(labels) if labels else [_default_label(r, p) for r, p in zip(results, paths, strict=True)]
    if len(labels) != len(results):
        raise SVGError(f"{len(labels)} labels for {len(results)} results: give one --label per results file")
    if len({(r["cond"], r["horizon"]) for r in results}) > 1:
        raise SVGError("the results differ in --cond or --horizon: compare runs evaluated the same way")
    written = [figures.plot_curves(results, labels, out, which)]
    if grid is not None:
        written.append(grid_figure(paths, labels, grid))
    return written


def _default_label(result: dict[str, Any], path: str | os.PathLike) -> str:
    return f"{result['model']['kind'].upper()} ({Path(path).parent.name if Path(path).is_file() else Path(path).name})"


def grid_figure(paths: Sequence[str | os.PathLike], labels: Sequence[str], out: str | os.PathLike,
                video: int = 0) -> Path:
    """Fig. 3-style grid for one test video: ground truth, then per run the deterministic prediction
    (det runs) or the best-PSNR sample and the random samples (stochastic runs)."""
    rows: list[tuple[str, np.ndarray]] = []
    cond = None
    for path, label in zip(paths, labels, strict=True):
        p = Path(path)
        kept = load_npz((p if p.is_dir() else p.parent) / "samples.npz")
        if video >= len(kept["gt"]):
            raise SVGError(f"{p} kept {len(kept['gt'])} videos for grids; video {video} is not among them")
        cond = int(kept["cond"])
        if not rows:
            rows.append(("ground truth", kept["gt"][video]))
        if kept["random"].shape[1] == 1 or _is_det(p):
            rows.append((f"{label}", kept["best_psnr"][video]))
            continue
        rows.append((f"{label} best PSNR", kept["best_psnr"][video]))
        rows += [(f"{label} sample {i + 1}", s) for i, s in enumerate(kept["random"][video])]
    title = f"test video {int(kept['video_index'][video])}"
    return figures.sample_grid(rows, cond, out, title)


def _is_det(path: Path) -> bool:
    try:
        return read_results(path)["model"]["kind"] == "det"
    except SVGError:
        return False


def run_trajectories(model_path: str | os.PathLike, out_dir: str | os.PathLike, *, digits: str | None = None,
                     sigma_trajectories: int = 4, sigma_videos: int = 32, sigma_length: int = 100,
                     velocity_trajectories: int = 3, velocity_digits: int = 16, velocity_samples: int = 16,
                     velocity_length: int | None = None, seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Figs. 5 and 6 for an SM-MNIST checkpoint: sigma.png, velocity.png and trajectories.json in out_dir.

    The sigma analysis needs an SVG-LP checkpoint and is skipped for FP and det; the velocity
    analysis needs a 1-digit model. Digits are MNIST TEST digits (`digits`: as for `svg train`).
    """
    from svg_core.data.digits import load_digits
    from svg_core.evaluation import trajectories as tr

    out_dir = Path(out_dir)
    sampler = load_sampler(model_path, device)
    cfg_run = sampler.config
    if cfg_run is None or cfg_run.train.dataset != "smmnist":
        raise SVGError("trajectory analyses need an SM-MNIST checkpoint (run directory), not a bundle or another dataset")
    n_past, n_digits_model = cfg_run.train.n_past, cfg_run.train.num_digits
    bank = load_digits(digits if digits is not None else cfg_run.train.digits, split="test")
    base = SMMNISTConfig(image_size=cfg_run.model.image_size, num_digits=n_digits_model,
                         channels=cfg_run.model.channels, seq_len=sigma_length)
    report: dict[str, Any] = {"model": sampler.describe(), "seed": seed, "n_past": n_past}
    if sampler.has_prior_sigma:
        sig = tr.sigma_at_bounces(sampler, bank, base, sigma_trajectories, sigma_videos, n_past, seed)
        figures.plot_sigma(sig["series"], out_dir / "sigma.png",
                           title=f"learned prior sigma (mean over z) on {sigma_videos} videos with synchronised motion")
        report["sigma"] = {"true_frames": sig["true_frames"], "own_samples": sig["own_samples"],
                           "trajectories": sigma_trajectories, "videos": sigma_videos, "length": sigma_length,
                           "rule": "hit: the sigma series has a strict local max within +-1 frame of the first "
                                   "frame after a wall hit; chance: the same test at every frame"}
    else:
        report["sigma"] = {"skipped": f"a {sampler.kind} model has no learned prior"}
    if n_digits_model == 1:
        vcfg = SMMNISTConfig(image_size=base.image_size, num_digits=1, channels=base.channels,
                             seq_len=velocity_length or cfg_run.train.n_past + 2 * cfg_run.train.n_future)
        panels = [tr.velocity_experiment(sampler, bank, vcfg, n_past, velocity_digits, velocity_samples, seed, k)
                  for k in range(velocity_trajectories)]
        for k, p in enumerate(panels):
            p["label"] = f"trajectory {k}"
        figures.plot_velocity(panels, out_dir / "velocity.png", max_speed=vcfg.max_speed)
        report["velocity"] = {
            "distance": "total variation over the 9x9 integer (dx, dy) grid plus one bin for |d| > 4, per predicted "
                        "frame; tv_after: mean over the frames after the first wall hit; floor: the same distance "
                        "between two independent ground-truth sets of the same size",
            "tv_after": float(np.mean([p["tv_after"] for p in panels])),
            "tv_floor_after": float(np.mean([p["tv_floor_after"] for p in panels])),
            "tv_all": float(np.mean([p["tv"].mean() for p in panels])),
            "samples_per_trajectory": velocity_digits * velocity_samples,
            "trajectories": [{k: p[k] for k in ("collision", "tv", "tv_floor", "tv_after", "tv_floor_after",
                                                 "outside_model")} for p in panels]}
    else:
        report["velocity"] = {"skipped": "the velocity analysis needs a 1-digit model"}
    write_json(out_dir / "trajectories.json", report)
    return report
