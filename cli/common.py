"""What every command shares: turning library errors into a one-line message and exit code 1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from svg_runtime.errors import SVGError


@contextlib.contextmanager
def fail_on_error() -> Iterator[None]:
    """Print a user-facing error (SVGError, ValueError, a file that cannot be read or written, memory
    exhausted) as one line and exit 1."""
    try:
        yield
    except (SVGError, ValueError) as e:
        _fail(str(e))
        raise typer.Exit(1) from e
    except OSError as e:  # missing, read-only or full folder, a file where a folder should be...
        where = f" ({e.filename})" if e.filename and str(e.filename) not in str(e) else ""
        _fail(f"{e}{where}: check that the path exists and that you may read/write it")
        raise typer.Exit(1) from e
    except MemoryError as e:
        _fail(f"out of memory ({e or 'allocation failed'}): lower --samples, --horizon or the batch size")
        raise typer.Exit(1) from e


def _fail(message: str) -> None:
    typer.secho(f"error: {' '.join(message.split())}", fg=typer.colors.RED, err=True)
