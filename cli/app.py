"""The `svg` command line: one typer app; each command group lives in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Stochastic Video Generation (SVG-LP/FP): train, export, roll out, evaluate, benchmark.")


def _version(value: bool) -> None:
    if value:
        from svg_runtime.version import __version__

        typer.echo(f"svg-video {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Stochastic Video Generation (SVG-LP/FP): train, export, roll out, evaluate, benchmark."""


def main() -> None:
    app()


# Each module adds its commands to `app` (one import line per module); modules keep their imports
# light: torch loads inside the commands that need it.
from svg_cli import (  # noqa: E402, F401, I001
    bench,
    control,
    data,
    data_pusht,
    data_real,
    data_smmnist,
    doctor,
    evaluate,
    export,
    rollout,
    train,
)
