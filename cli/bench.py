"""`svg bench`: throughput of the training step (--train) or of an exported bundle (BUNDLE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from svg_cli.app import app
from svg_cli.common import fail_on_error
from svg_runtime.errors import SVGError


@app.command()
def bench(
    bundle: Annotated[Path | None, typer.Argument(help="Exported bundle directory to benchmark (inference).")] = None,
    train: Annotated[bool, typer.Option("--train", help="Benchmark the training step: the batched encoder/decoder "
                                        "step against a per-frame loop like the authors' code.")] = False,
    batch_size: Annotated[int, typer.Option(help="Sequences per training step.")] = 16,
    width: Annotated[list[int] | None, typer.Option(help="DCGAN-64 base width; repeat for several "
                                                    "(default: 64, the paper's, and 16).")] = None,
    steps: Annotated[int, typer.Option(help="Timed training steps per variant (the median is reported).")] = 3,
    warmup: Annotated[int, typer.Option(help="Untimed steps first.")] = 1,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results to this JSON file.")] = None,
) -> None:
    """Benchmark training (--train) or inference of an exported BUNDLE."""
    with fail_on_error():
        if train:
            _bench_train(tuple(width or (64, 16)), batch_size, steps, warmup, device, json_out)
        elif bundle is not None:
            try:
                from svg_core.bench_infer import run_bench
            except ImportError as e:
                raise SVGError("inference benchmark not available yet in this version: "
                               "use `svg bench --train` for the training step") from e
            run_bench(bundle)
        else:
            raise SVGError("nothing to benchmark: give an exported BUNDLE directory, or --train")


def _bench_train(widths: tuple[int, ...], batch_size: int, steps: int, warmup: int, device: str,
                 json_out: Path | None) -> None:
    import torch

    from svg_core.bench_train import format_table, rows_as_dicts, run_train_bench
    from svg_core.distributed import resolve_device

    if batch_size < 1 or steps < 1 or warmup < 0:
        raise SVGError("need --batch-size >= 1, --steps >= 1 and --warmup >= 0")
    resolve_device(device)
    typer.echo(f"SVG-LP DCGAN-64 training step, batch {batch_size}, 15 frames, {device}, "
               f"{torch.get_num_threads()} threads; median of {steps} steps")
    rows = run_train_bench(widths, batch_size=batch_size, steps=steps, warmup=warmup, device=device)
    typer.echo(format_table(rows))
    if json_out is not None:
        json_out.write_text(json.dumps(rows_as_dicts(rows), indent=2))
