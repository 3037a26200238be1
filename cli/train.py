"""`svg train`: train an SVG model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from svg_cli.app import app
from svg_cli.common import fail_on_error, resolve_device
from svg_runtime.errors import SVGError


@app.command()
def train(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Run directory for checkpoints, metrics and samples.")],
    dataset: Annotated[str, typer.Option(help="Dataset: smmnist; kth or bair (converted by `svg data kth|bair`: "
                                         "kth:DIR or --data-dir DIR); folder:PATH (your videos: mp4/avi/gif, "
                                         "image folders, .npy/.npz; decoded once into a cache).")] = "smmnist",
    data_dir: Annotated[Path | None, typer.Option(help="Directory of the data: the converted KTH/BAIR "
                                                  "directory, or the video folder of --dataset folder.")] = None,
    model: Annotated[Literal["lp", "fp", "det"], typer.Option(help="Model kind: lp (learned prior), fp (fixed "
                                                              "prior) or det (deterministic).")] = "lp",
    preset: Annotated[str | None, typer.Option(help="Paper preset: smmnist, smmnist-small, kth or bair "
                                               "(default: the dataset's; folder: sized for this machine).")] = None,
    steps: Annotated[int | None, typer.Option(help="Train until this many steps in total.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per step (over all processes).")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate (paper: 2e-3); applies on --resume too.")] = None,
    lr_decay: Annotated[float | None, typer.Option(help="Final fraction of the run over which the learning rate "
                                                   "falls linearly to 0 (paper: 0, constant; "
                                                   "smmnist-small: 0.4).")] = None,
    recon: Annotated[Literal["mse", "bce"] | None, typer.Option(
        help="Reconstruction loss: mse (the paper) or bce (binary cross-entropy; smmnist-small).")] = None,
    n_past: Annotated[int | None, typer.Option(help="Conditioning frames per training sequence.")] = None,
    n_future: Annotated[int | None, typer.Option(help="Predicted frames per training sequence.")] = None,
    num_workers: Annotated[int | None, typer.Option(help="DataLoader worker processes (0: load in the "
                                                    "training process).")] = None,
    num_digits: Annotated[int | None, typer.Option(help="SM-MNIST digits per video (1 or 2).")] = None,
    image_size: Annotated[int | None, typer.Option(help="Frame size: 64 or 128.")] = None,
    width: Annotated[int | None, typer.Option(help="Base conv width (paper: 64).")] = None,
    digits: Annotated[str | None, typer.Option(help="MNIST source: an idx directory, 'download' or "
                                               "'bundled' (default: $SVG_MNIST_DIR, cache, bundled).")] = None,
    amp: Annotated[Literal["none", "bf16", "fp16"] | None, typer.Option(
        help="Mixed precision: bf16 (CPU or GPU) or fp16 (GPU, with a gradient scaler).")] = None,
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile",
                                                 help="torch.compile the training step.")] = None,
    channels_last: Annotated[bool | None, typer.Option("--channels-last/--no-channels-last",
                                                       help="NHWC convolutions (faster on recent GPUs).")] = None,
    sync_bn: Annotated[bool | None, typer.Option("--sync-bn/--no-sync-bn",
                                                 help="BatchNorm statistics over all processes' frames "
                                                 "(multi-process runs; then N processes match one).")] = None,
    nproc: Annotated[int, typer.Option(help="Processes (one per GPU with --device cuda): re-launches "
                                       "itself through torchrun; --batch-size is the global batch.")] = 1,
    config: Annotated[Path | None, typer.Option(help="JSON file with {'model': {...}, 'train': {...}} "
                                                "options (e.g. a run's config.json).")] = None,
    use_actions: Annotated[bool, typer.Option("--actions/--no-actions",
                                              help="Condition the model on the data's actions when it has them "
                                              "(--no-actions: an unconditional model of the same videos).")] = True,
    resume: Annotated[bool, typer.Option(help="Continue the checkpoint in --out.")] = False,
    device: Annotated[Literal["auto", "cpu", "cuda"], typer.Option(help="auto: cuda when available.")] = "auto",
    seed: Annotated[int | None, typer.Option(help="Random seed (data and initialisation).")] = None,
    sample_every: Annotated[int | None, typer.Option(help="Write sample grids every N steps.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Save a checkpoint every N steps.")] = None,
) -> None:
    """Train SVG-LP, SVG-FP or the deterministic baseline; resumable with --resume.

    Ctrl-C or SIGTERM saves a checkpoint at the step reached and exits with 130 or 143.
    """
    with fail_on_error():
        from svg_core.config import RunConfig, with_overrides
        from svg_core.config import preset as make_preset
        from svg_core.train import train as run_training

        device = resolve_device(device, torch_side=True)
        overrides = dict(kind=model, steps=steps, batch_size=batch_size, lr=lr, lr_decay=lr_decay, recon=recon,
                         num_digits=num_digits,
                         image_size=image_size, width=width, digits=digits, amp=amp, device=device, seed=seed,
                         sample_every=sample_every, checkpoint_every=checkpoint_every,
                         dataset=_dataset_name(dataset, data_dir), n_past=n_past, n_future=n_future,
                         num_workers=num_workers,
                         compile=compile, channels_last=channels_last, sync_bn=sync_bn)
        given = _given(ctx, overrides)  # defaults never override a --config file or a resumed run
        relaunch = nproc != 1 and "LOCAL_RANK" not in os.environ  # not yet under torchrun: start it
        if resume:  # under torchrun, each process reads the run's config
            cfg = None if relaunch else _resume_config(out, config, preset, given)
        elif config is not None:
            cfg = _fit_channels(with_overrides(RunConfig.from_dict(_read_json(config)), **given), use_actions)
        else:  # the model's channels follow the data (a resumed run keeps its checkpoint's)
            cfg = _fit_channels(make_preset(preset or _default_preset(overrides["dataset"], device), **overrides), use_actions)
        if relaunch:
            from svg_core.distributed import DistInfo, check_batch_split, relaunch_with_torchrun

            if cfg is not None:
                check_batch_split(cfg.train.batch_size, DistInfo(world_size=max(nproc, 1)))
            raise typer.Exit(relaunch_with_torchrun(nproc, ["train", *_args_without_nproc(ctx)]))
        result = run_training(out, cfg, resume=resume)
        if os.environ.get("RANK", "0") != "0":  # a torchrun worker other than the main one
            raise typer.Exit(result.exit_code)
        if result.stopped_by:
            typer.echo(f"stopped by {result.stopped_by} at step {result.step}; checkpoint saved in "
                       f"{result.run_dir}: continue with --resume", err=True)
            raise typer.Exit(result.exit_code)
        typer.echo(f"step {result.step}: loss {result.loss:.5f} (mse {result.mse:.5f}, kl {result.kld:.3f}); "
                   f"checkpoint and samples in {result.run_dir}")


# CLI parameter -> config option, where the names differ (--data-dir is part of the dataset option)
_OPTION_OF = {"model": "kind", "data_dir": "dataset"}


def _given(ctx: typer.Context, overrides: dict) -> dict:
    """The options typed on the command line (or set in the environment), not typer's defaults."""
    typed = {_OPTION_OF.get(name, name) for name in ctx.params  # by name: typer vendors its own click
             if getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")}
    return {k: v for k, v in overrides.items() if k in typed and v is not None}


def _resume_config(out: Path, config: Path | None, preset: str | None, given: dict):
    """The run's saved config with the options given applied: allowed changes are printed, others refused."""
    from svg_core.checkpoint import read_config
    from svg_core.config import resume_config

    if preset is not None:
        raise SVGError("--preset does not apply to --resume: the run continues with its saved config; drop --preset")
    saved = read_config(out)
    requested = dict(given)
    if config is not None:  # a config file states the whole run: it must match too
        from svg_core.config import RunConfig

        data = RunConfig.from_dict(_read_json(config)).to_dict()
        requested = {**data["model"], **data["train"], **given}
    cfg, changed = resume_config(saved, requested)
    if changed:
        typer.echo("resuming with changed option(s): " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()),
                   err=True)
    return cfg


def _args_without_nproc(ctx: typer.Context) -> list[str]:
    """The command line of this call, rebuilt from its parsed options, minus --nproc."""
    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in ("nproc", "ctx") or value is None or value == param.default:
            continue
        if getattr(param, "is_flag", False):
            args.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            args += [param.opts[0], str(value)]
    return args


def _dataset_name(dataset: str, data_dir: Path | None) -> str:
    """--dataset kth --data-dir D -> "kth:D" (likewise bair, folder)."""
    return dataset if data_dir is None else f"{dataset.partition(':')[0]}:{data_dir}"


def _default_preset(dataset: str, device: str) -> str:
    """The dataset's paper preset; for your own videos (folder:PATH) one sized for this machine, printed."""
    family = dataset.partition(":")[0]
    if family == "pusht":
        return "pusht-small"
    if family != "folder":
        return family
    name, why = FOLDER_PRESETS["cuda" if device.startswith("cuda") else "cpu"]
    typer.echo(f"note: --dataset folder without --preset: using --preset {name} ({why}); other choices: "
               "smmnist-small, smmnist, kth (VGG-64, 10 -> 10), bair (VGG-64, 2 -> 10)", err=True)
    return name


# --dataset folder without --preset: the model sized for the device it trains on
FOLDER_PRESETS = {
    "cpu": ("smmnist-small", "DCGAN-64 at width 16, 5 -> 10 frames, batch 32, bf16: learns on a CPU in minutes"),
    "cuda": ("smmnist", "the paper's DCGAN-64 at width 64, 5 -> 10 frames, batch 100: sized for one GPU"),
}


def _fit_channels(cfg, use_actions: bool = True):
    from svg_core.datasets import fit_to_data

    fitted = fit_to_data(cfg, use_actions)
    if fitted.model.channels != cfg.model.channels:
        typer.echo(f"note: the data have {fitted.model.channels} channel(s): the model takes "
                   f"{fitted.model.channels} (the preset had {cfg.model.channels})", err=True)
    m = fitted.model
    if m.has_actions:
        stats = ", ".join(f"{n} {mu:.3g} +- {sd:.3g}" for n, mu, sd in zip(m.action_names, m.action_mean,
                                                                            m.action_std, strict=True))
        typer.echo(f"note: the data have {m.action_dim}-dimensional actions: the model is action-conditioned "
                   f"({stats}; normalised with these statistics)", err=True)
    return fitted


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SVGError(f"cannot read config file {path}: {e}") from e
