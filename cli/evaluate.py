"""`svg eval`, `svg eval-plot`, `svg eval-trajectories`: the paper's evaluation and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from svg_cli.app import app
from svg_cli.common import fail_on_error, resolve_device


@app.command("eval")
def eval_(
    model: Annotated[Path, typer.Argument(help="Run directory, checkpoint file or exported bundle directory.")],
    data: Annotated[Path, typer.Option("--data", help="Test set .npz (`svg data smmnist`).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory, e.g. eval/NAME.")],
    samples: Annotated[int, typer.Option(help="Samples per test video (best/worst/mean of N).")] = 100,
    cond: Annotated[int | None, typer.Option(help="Conditioning frames (default: the model's n_past).")] = None,
    horizon: Annotated[int | None, typer.Option(help="Predicted frames (default: the rest of each video).")] = None,
    ssim_window: Annotated[Literal["gaussian", "uniform7"], typer.Option(
        help="gaussian: 11x11, sigma 1.5; uniform7: 7x7 box.")] = "gaussian",
    batch_videos: Annotated[int, typer.Option(help="Videos per sampling call (batch = videos x samples).")] = 4,
    max_videos: Annotated[int | None, typer.Option(help="Evaluate only the first N test videos.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampling noise (video i draws from the stream (seed, i)).")] = 0,
    device: Annotated[Literal["auto", "cpu", "cuda"], typer.Option(help="auto: cuda when available.")] = "auto",
) -> None:
    """Best-of-N PSNR/SSIM per frame with 95% intervals, the copy-last and black baselines, diversity."""
    with fail_on_error():
        from svg_core.evaluation.protocol import EvalOptions
        from svg_core.evaluation.runner import run_eval

        opts = EvalOptions(n_samples=samples, cond=cond, horizon=horizon, ssim_window=ssim_window,
                           batch_videos=batch_videos, seed=seed, max_videos=max_videos,
                           device=resolve_device(device, torch_side=True))
        r = run_eval(model, data, out, opts).results
        m, b = r["metrics"], r["baselines"]["copy_last"]
        n = r["options"]["n_samples_drawn"]
        typer.echo(f"{r['n_videos']} videos, {r['cond']} -> {r['horizon']}, best of {n}: "
                   f"SSIM {m['ssim']['best']['mean']:.4f} +- {m['ssim']['best']['ci95']:.4f}, "
                   f"PSNR {m['psnr']['best']['mean']:.2f} +- {m['psnr']['best']['ci95']:.2f} dB; "
                   f"copy-last SSIM {b['ssim']['mean']:.4f}, PSNR {b['psnr']['mean']:.2f} dB; "
                   f"diversity {r['diversity']['mean']:.5f}. Results in {out}")


@app.command("eval-plot")
def eval_plot(
    results: Annotated[list[Path], typer.Argument(help="results.json files (or their directories) to compare.")],
    out: Annotated[Path, typer.Option("--out", help="Curves PNG.")],
    label: Annotated[list[str] | None, typer.Option(help="One label per results file (repeat the option).")] = None,
    grid: Annotated[Path | None, typer.Option(help="Also write a sample grid PNG (ground truth, det, "
                                              "best-PSNR and random samples).")] = None,
    which: Annotated[Literal["best", "worst", "mean"], typer.Option(help="Which sample per video.")] = "best",
) -> None:
    """Plot SSIM and PSNR per frame of several evaluations (e.g. LP, FP, det) on one figure."""
    with fail_on_error():
        from svg_core.evaluation.runner import compare

        for path in compare(results, out, labels=label, grid=grid, which=which):
            typer.echo(f"wrote {path}")


@app.command("eval-trajectories")
def eval_trajectories(
    model: Annotated[Path, typer.Argument(help="SM-MNIST run directory or checkpoint file.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")],
    digits: Annotated[str | None, typer.Option(help="MNIST source (TEST split; default: the run's).")] = None,
    sigma_trajectories: Annotated[int, typer.Option(help="Synchronised-motion sets for the sigma figure.")] = 4,
    sigma_videos: Annotated[int, typer.Option(help="Videos (digits) per synchronised set.")] = 32,
    sigma_length: Annotated[int, typer.Option(help="Frames per synchronised video.")] = 100,
    velocity_trajectories: Annotated[int, typer.Option(help="Trajectories for the velocity figure.")] = 3,
    velocity_digits: Annotated[int, typer.Option(help="Digits per velocity trajectory.")] = 16,
    velocity_samples: Annotated[int, typer.Option(help="Samples per digit.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of trajectories, digits and noise.")] = 0,
    device: Annotated[Literal["auto", "cpu", "cuda"], typer.Option(help="auto: cuda when available.")] = "auto",
) -> None:
    """Fig. 6 (prior sigma at wall hits) and Fig. 5 (post-collision velocity distribution)."""
    with fail_on_error():
        from svg_core.evaluation.runner import run_trajectories

        r = run_trajectories(model, out, digits=digits, sigma_trajectories=sigma_trajectories,
                             sigma_videos=sigma_videos, sigma_length=sigma_length,
                             velocity_trajectories=velocity_trajectories, velocity_digits=velocity_digits,
                             velocity_samples=velocity_samples, seed=seed,
                             device=resolve_device(device, torch_side=True))
        s, v = r["sigma"], r["velocity"]
        if "true_frames" in s:
            t, o = s["true_frames"], s["own_samples"]
            typer.echo(f"sigma local max at wall hits: true frames {t['fraction']:.2f} (chance {t['chance']:.2f}, "
                       f"{t['hits']}/{t['bounces']} wall hits), own samples {o['fraction']:.2f} (chance {o['chance']:.2f})")
        if "tv_after" in v:
            typer.echo(f"velocity TV after collision {v['tv_after']:.3f} (noise floor {v['tv_floor_after']:.3f})")
        typer.echo(f"wrote {out}")
