"""`python -m svg_cli` runs the CLI (torchrun uses this form)."""

from svg_cli.app import main

main()
