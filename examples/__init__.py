"""Examples shipped with the wheel: `python -m svg_examples.planning_loop --help` (torch-free)."""
