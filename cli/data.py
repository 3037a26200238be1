"""`svg data ...`: build test sets and convert datasets; each dataset's commands live in their own module."""

from __future__ import annotations

import typer

from svg_cli.app import app

data_app = typer.Typer(no_args_is_help=True, help="Build fixed test sets and convert real datasets.")
app.add_typer(data_app, name="data")
