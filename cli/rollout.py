"""`svg rollout`: sample futures of a context video with an exported bundle (no torch needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from svg_cli.app import app
from svg_cli.common import fail_on_error, resolve_device


@app.command()
def rollout(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory written by `svg export`.")],
    context: Annotated[Path, typer.Option("--context", help="Context frames: .npz (key 'frames' or its only "
                                          "array), .npy, .gif, .mp4 or a folder of PNGs. Arrays: (T, H, W), "
                                          "(T, C, H, W), (T, H, W, C), or a batch (B, T, C, H, W) / "
                                          "(B, T, H, W, C); uint8 0..255 or float in [0, 1].")],
    out: Annotated[Path, typer.Option("--out", help="OUT.gif or OUT.mp4 (grid of samples), OUT.npz (frames, "
                                      "mu, sigma, eps, context, seed), or a directory (rollout.gif and "
                                      "rollout.npz).")],
    samples: Annotated[int, typer.Option("--samples", help="Futures to sample per video.")] = 10,
    horizon: Annotated[int | None, typer.Option("--horizon", help="Frames to predict per future (default: "
                                                "the length of --actions, else 10).")] = None,
    actions: Annotated[Path | None, typer.Option("--actions", help="Action-conditioned bundles: .npy (or .npz "
                                                 "key 'actions') of future actions in your units, (H, A), K "
                                                 "candidate sequences (K, H, A) or per video (B, K, H, A). The "
                                                 "actions between context frames come from the context .npz's "
                                                 "'actions' (T-1, A).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the noise (default: a fresh one, printed).")] = None,
    backend: Annotated[Literal["auto", "ort", "trt"], typer.Option(help="ort: onnxruntime, trt: TensorRT, "
                                                                    "auto: TensorRT when the bundle has engines.")] = "auto",
    device: Annotated[str, typer.Option(help="auto (cuda when onnxruntime can use it), cpu, cuda or cuda:N.")] = "auto",
    cond: Annotated[int | None, typer.Option("--cond", help="Condition on the first K context frames (default: "
                                             "all); later frames appear as ground truth in the grid.")] = None,
    fps: Annotated[float, typer.Option(help="Frames per second of the GIF/MP4.")] = 4.0,
    show: Annotated[int, typer.Option(help="Samples shown in the GIF/MP4 grid (the NPZ holds all).")] = 8,
    threads: Annotated[int | None, typer.Option(help="onnxruntime threads (default: one per core).")] = None,
) -> None:
    """Sample futures of a context video with an exported bundle; write a GIF/MP4 grid and/or an NPZ.

    Frames must already have the model's size; RGB frames whose channels agree are read as gray.

    Grid rows are videos; columns: the given video (if it has frames past --cond), then samples.

    Conditioning frames are framed in green. Needs no torch.
    """
    with fail_on_error():
        from svg_runtime.rollout import RolloutOptions, run_rollout

        device = resolve_device(device, torch_side=False)
        opts = RolloutOptions(bundle=bundle, context=context, out=out, n_samples=samples, horizon=horizon,
                              actions=actions, seed=seed,
                              backend=backend, device=device, n_cond=cond, fps=fps, n_show=show, threads=threads)
        report = run_rollout(opts)
        typer.echo(f"context {report.context}; conditioning on {report.n_cond} frame(s)")
        per = f" for each of {report.sequences} action sequence(s)" if report.sequences else ""
        typer.echo(f"sampled {samples} x {report.horizon} frames{per} in {report.seconds:.2f} s ({report.ms_per_step:.1f} ms "
                   f"per step, {report.kind} model, {report.backend}, {device}), seed {report.seed}")
        typer.echo(f"wrote {', '.join(str(p) for p in report.written)}")
