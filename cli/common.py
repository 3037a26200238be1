"""What every command shares: turning library errors into a one-line message and exit code 1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from svg_runtime.errors import SVGError


@contextlib.contextmanager
def fail_on_error() -> Iterator[None]:
    """Print a user-facing error (SVGError, ValueError, missing file) as one line and exit 1."""
    try:
        yield
    except (SVGError, ValueError, FileNotFoundError) as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from e
