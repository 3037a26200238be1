"""What every command shares: turning library errors into a one-line message and exit code 1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from svg_runtime.errors import SVGError
from svg_runtime.extras import missing_extra_message


@contextlib.contextmanager
def fail_on_error() -> Iterator[None]:
    """Print a user-facing error (SVGError, ValueError, a missing extra, a file that cannot be read or
    written, memory exhausted) as one line and exit 1."""
    try:
        yield
    except ModuleNotFoundError as e:  # an optional extra is missing: say which one installs it
        command = click_command_name()
        message = missing_extra_message(e.name, f"`svg {command}`" if command else "this command")
        if message is None:
            raise
        _fail(message)
        raise typer.Exit(1) from e
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


def click_command_name() -> str | None:
    """'data smmnist' for the command being run, or None when that cannot be told."""
    try:  # typer >= 0.2x vendors click; older ones use click itself
        from typer._click.globals import get_current_context
    except ImportError:
        try:
            from click import get_current_context
        except ImportError:
            return None
    ctx = get_current_context(silent=True)
    return None if ctx is None else " ".join(ctx.command_path.split()[1:]) or None


def resolve_device(device: str, *, torch_side: bool) -> str:
    """--device auto -> cuda when usable (torch's CUDA for torch commands, onnxruntime's otherwise), else cpu."""
    if device != "auto":
        return device
    if torch_side:
        import torch

        found = torch.cuda.is_available()
    else:
        from svg_runtime.extras import import_onnxruntime

        found = "CUDAExecutionProvider" in import_onnxruntime().get_available_providers()
    return "cuda" if found else "cpu"
