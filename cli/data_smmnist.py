"""`svg data smmnist`: build a fixed Stochastic Moving MNIST test set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from svg_cli.common import fail_on_error
from svg_cli.data import data_app


@data_app.command("smmnist")
def smmnist(
    out: Annotated[Path, typer.Option("--out", help="Output .npz file.")],
    num_digits: Annotated[int, typer.Option(help="Digits per video.")] = 2,
    length: Annotated[int, typer.Option(help="Frames per video (5 -> 20 needs 25).")] = 25,
    count: Annotated[int, typer.Option(help="Number of videos.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same file.")] = 42,
    digits: Annotated[str | None, typer.Option(help="MNIST source (its TEST split is used): an idx directory, "
                                               "'download' or 'bundled' (default: $SVG_MNIST_DIR, cache, bundled).")] = None,
    image_size: Annotated[int, typer.Option(help="Frame size in pixels.")] = 64,
) -> None:
    """Build a fixed SM-MNIST test set (frames uint8, digit positions, bounces) from MNIST test digits."""
    with fail_on_error():
        from svg_core.data.smmnist import build_smmnist_test_set

        path = build_smmnist_test_set(out, num_digits=num_digits, length=length, count=count, seed=seed,
                                      digits=digits, image_size=image_size)
        typer.echo(f"wrote {count} videos of {length} frames to {path}")
