"""`svg export`: a checkpoint -> a self-describing ONNX bundle (optionally with TensorRT engines)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from svg_cli.app import app
from svg_cli.common import fail_on_error
from svg_runtime.progress import progress_bar


@app.command("export")
def export(
    run: Annotated[Path, typer.Argument(help="Run directory or checkpoint.safetensors file.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle directory to write, e.g. bundles/NAME.")],
    fp16: Annotated[bool, typer.Option("--fp16", help="fp16 convolutions inside the graphs (fp32 inputs, "
                                       "outputs and LSTM state); checked to 1e-2 instead of 1e-4.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="int8 convolutions for onnxruntime on the CPU (VNNI/AMX), "
                                       "checked by the SSIM of a 5 -> 20 rollout against PyTorch (>= 0.99).")] = False,
    calibration: Annotated[Path | None, typer.Option(help="With --int8: frames (N, T, C, H, W) in a .npy file to "
                                                     "calibrate on (default: synthetic frames).")] = None,
    trt: Annotated[bool, typer.Option("--trt", help="Also build TensorRT engines (needs TensorRT and a GPU).")] = False,
    max_batch: Annotated[int, typer.Option(help="Largest batch (videos x samples) of the TensorRT profiles.")] = 256,
    opt_batch: Annotated[int, typer.Option(help="Batch the TensorRT engines are tuned for.")] = 100,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bundle.")] = False,
) -> None:
    """Export a trained model to a bundle directory and verify it against PyTorch."""
    with fail_on_error():
        from svg_export.bundle import ExportOptions, export_bundle

        # torch.onnx warns once per graph that torchvision's ops are not registered: we use none.
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)

        opts = ExportOptions(checkpoint=run, out=out, fp16=fp16, int8=int8, calibration=calibration, trt=trt,
                             max_batch=max_batch, opt_batch=opt_batch, force=force)
        bars: list = []  # the bar starts with the first finished stage: bad input fails before any bar line

        def advance(stage: str, done: int, total: int) -> None:
            if not bars:
                bars.append(progress_bar(total=total, desc="export", unit="stage", leave=False))
            _advance(bars[0], stage, done, total)

        try:
            manifest = export_bundle(opts, progress=advance)
        finally:
            for bar in bars:
                bar.close()
        parity = manifest["parity"]
        worst = max(e["max_abs_err"] for e in parity["graphs"].values())
        roll = parity["rollout"]
        typer.echo(f"wrote {out} ({manifest['model']['kind']}, {manifest['precision']}, "
                   f"{len(manifest['graphs'])} graphs{', TensorRT engines' if manifest['tensorrt'] else ''}) "
                   f"in {manifest['export']['seconds']:.1f} s; max abs err vs PyTorch: graphs {worst:.2e}, "
                   f"rollout {roll['context']} -> {roll['horizon']} {roll['max_abs_err']:.2e}")
        if manifest.get("quantization"):
            q = manifest["quantization"]["rollout"]
            typer.echo(f"int8 against fp32 PyTorch, same eps: first predicted frame SSIM {q['ssim_first_step']:.4f} "
                       f"(the gate); rollout {q['context']} -> {q['horizon']} SSIM {q['ssim_mean']:.4f}, last step "
                       f"{q['ssim_last_step']:.4f} (not gated: a stochastic model's futures drift apart)")


def _advance(bar, stage: str, done: int, total: int) -> None:
    bar.total = total
    bar.set_postfix_str(stage, refresh=False)
    bar.update(done - bar.n)
