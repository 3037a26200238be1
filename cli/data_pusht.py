"""`svg data pusht`: record Push-T episodes (frames and actions) with a smooth random policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from svg_cli.common import fail_on_error
from svg_cli.data import data_app


@data_app.command("pusht")
def pusht(
    out: Annotated[Path, typer.Option("--out", help="Directory to create (episode_00000.npz ... + meta.json).")],
    episodes: Annotated[int, typer.Option(help="Number of episodes.")] = 300,
    length: Annotated[int, typer.Option(help="Frames per episode (actions: one fewer).")] = 40,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same episodes.")] = 0,
    image_size: Annotated[int, typer.Option(help="Frame size in pixels.")] = 64,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Record Push-T episodes (needs the [sim] extra): RGB frames, agent-target actions, agent and block poses."""
    with fail_on_error():
        from svg_runtime.pusht import record_episodes

        path = record_episodes(episodes, length, out, seed, image_size=image_size, overwrite=overwrite)
        typer.echo(f"wrote {episodes} episodes of {length} frames ({image_size}x{image_size}) to {path}")
