"""`svg bench`: throughput of the training step (--train) or of an exported bundle (BUNDLE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from svg_cli.app import app
from svg_cli.common import fail_on_error, resolve_device
from svg_runtime.errors import SVGError


@app.command()
def bench(
    bundles: Annotated[list[Path] | None, typer.Argument(help="Exported bundle directory (or several, e.g. an fp32 "
                                                          "and an --int8 export of one model) to benchmark.")] = None,
    train: Annotated[bool, typer.Option("--train", help="Benchmark the training step: the batched encoder/decoder "
                                        "step against a per-frame loop like the authors' code.")] = False,
    batch_size: Annotated[str | None, typer.Option(help="Training: sequences per step (default 16). Inference: "
                                                   "comma-separated batch sizes, videos x samples (default "
                                                   "1,16,100).")] = None,
    width: Annotated[list[int] | None, typer.Option(help="DCGAN-64 base width; repeat for several "
                                                    "(default: 64, the paper's, and 16).")] = None,
    steps: Annotated[int | None, typer.Option(help="Timed steps per variant (training, default 3) or per backend "
                                              "and batch size (inference, default 20); the median is reported.")] = None,
    warmup: Annotated[int, typer.Option(help="Untimed steps first.")] = 1,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Training: also time the bf16 batched step "
                                                "with NHWC convolutions (svg train --channels-last).")] = False,
    compile_step: Annotated[bool, typer.Option("--compile", help="Training: also time the bf16 batched step under "
                                               "torch.compile (svg train --compile; compiled in the warm-up, which "
                                               "takes minutes).")] = False,
    device: Annotated[Literal["auto", "cpu", "cuda"], typer.Option(help="Training: auto is cuda when "
                                                                    "available.")] = "auto",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results to this JSON file.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", hidden=True, help="Old name of --batch-size.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Inference: the PyTorch checkpoint to compare with "
                                                    "(default: the one recorded in the bundle's manifest).")] = None,
    threads: Annotated[int | None, typer.Option(help="Inference: torch and onnxruntime threads (default: theirs).")] = None,
    plan: Annotated[bool, typer.Option("--plan", help="Time one planning call (MPPI/CEM over batched futures) of "
                                       "action-conditioned BUNDLES (e.g. fp32 and --int8) against the same planner "
                                       "driving PyTorch.")] = False,
    sequences: Annotated[int, typer.Option(help="--plan: candidate action sequences.")] = 200,
    horizon: Annotated[int, typer.Option(help="--plan: planning horizon.")] = 10,
    planner: Annotated[str, typer.Option(help="--plan: mppi or cem.")] = "mppi",
) -> None:
    """Benchmark training (--train) or inference of exported BUNDLES against PyTorch eager."""
    with fail_on_error():
        sizes = batch_size or batch
        if plan:
            _bench_plan(bundles or [], sequences, horizon, planner, steps or 5, threads, json_out)
        elif train:
            tweaks = tuple(t for t, on in (("channels_last", channels_last), ("compile", compile_step)) if on)
            _bench_train(tuple(width or (64, 16)), _one_int(sizes or "16"), steps or 3, warmup,
                         resolve_device(device, torch_side=True), json_out, tweaks)
        elif bundles:
            _bench_infer(bundles, sizes or "1,16,100", steps or 20, checkpoint, threads, json_out)
        else:
            raise SVGError("nothing to benchmark: give an exported BUNDLE directory, or --train")


def _bench_infer(bundles: list[Path], batch: str, steps: int, checkpoint: Path | None, threads: int | None,
                 json_out: Path | None) -> None:
    from svg_bench.infer import InferBenchOptions, format_summary, format_table, run_bench
    from svg_core.checkpoint import atomic_write_text

    try:
        batches = tuple(int(b) for b in batch.split(","))
    except ValueError as e:
        raise SVGError(f"--batch-size takes comma-separated integers like 1,16,100, got {batch!r}") from e
    opts = InferBenchOptions(bundles=tuple(bundles), batches=batches, steps=steps, checkpoint=checkpoint,
                             threads=threads)
    typer.echo(f"SVG sampling step (encode, prior, predictor, decode), median of {steps} steps per backend "
               "and batch size; backends take turns")
    report = run_bench(opts)
    typer.echo(format_summary(report))
    typer.echo(format_table(report))
    for skip in report.skipped:
        typer.echo(f"skipped {skip['backend']}: {skip['reason']}")
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report.to_json(), indent=2) + "\n")


def _bench_plan(bundles: list[Path], sequences: int, horizon: int, planner: str, calls: int, threads: int | None,
                json_out: Path | None) -> None:
    from svg_bench.plan import PlanBenchOptions, format_table, run_plan_bench
    from svg_runtime.atomic import atomic_write_text

    if not bundles:
        raise SVGError("--plan needs an action-conditioned BUNDLE (e.g. one exported from a pusht run)")
    opts = PlanBenchOptions(bundles=tuple(bundles), n_sequences=sequences, horizon=horizon, optimizer=planner,
                            calls=calls, threads=threads)
    typer.echo(f"one planning call: {planner}, {sequences} sequences x horizon {horizon}, goal-image cost; "
               f"median of {calls} calls per backend")
    rows = run_plan_bench(opts)
    typer.echo(format_table(rows))
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(rows, indent=2) + "\n")


def _bench_train(widths: tuple[int, ...], batch_size: int, steps: int, warmup: int, device: str,
                 json_out: Path | None, tweaks: tuple[str, ...] = ()) -> None:
    import torch

    from svg_bench.train import format_table, rows_as_dicts, run_train_bench
    from svg_core.distributed import resolve_device

    if batch_size < 1 or steps < 1 or warmup < 0:
        raise SVGError("need --batch-size >= 1, --steps >= 1 and --warmup >= 0")
    if "compile" in tweaks and warmup < 1:
        raise SVGError("--compile compiles in the first step: give --warmup 1 or more, so that it is not timed")
    resolve_device(device)
    typer.echo(f"SVG-LP DCGAN-64 training step, batch {batch_size}, 15 frames, {device}, "
               f"{torch.get_num_threads()} threads; median of {steps} steps")
    rows = run_train_bench(widths, batch_size=batch_size, steps=steps, warmup=warmup, tweaks=tweaks, device=device)
    typer.echo(format_table(rows))
    if json_out is not None:
        json_out.write_text(json.dumps(rows_as_dicts(rows), indent=2))


def _one_int(text: str) -> int:
    try:
        return int(text)
    except ValueError as e:
        raise SVGError(f"--batch-size with --train takes one integer, e.g. 16, got {text!r}") from e
