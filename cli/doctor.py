"""`svg doctor`: versions, usable onnxruntime providers, GPU and TensorRT of this installation."""

from __future__ import annotations

import typer

from svg_cli.app import app


@app.command()
def doctor() -> None:
    """Print versions, the onnxruntime providers that actually work here, the GPU and TensorRT.

    Exits with 1 when something needs fixing (e.g. onnxruntime missing, or two onnxruntime builds).
    """
    from svg_cli.checks import run_doctor

    report = run_doctor()
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        line = f"{check.name:<{width}}  {check.value}"
        typer.secho(line, fg=None if check.ok else typer.colors.RED)
    if not report.ok:
        raise typer.Exit(1)
