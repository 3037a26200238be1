"""Checkpoints: one safetensors file holding weights, optimizer and RNG state, config and step.

A single file lets a save be atomic (write a temporary file, fsync, os.replace): a crash or a
full disk mid-save leaves the previous checkpoint loadable. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from svg_core.config import RunConfig
from svg_core.errors import SVGError
from svg_core.model import SVG
from svg_runtime.atomic import atomic_path, atomic_write_text

CHECKPOINT_NAME = "checkpoint.safetensors"
FORMAT = "svg-video-checkpoint/1"


@dataclass
class Checkpoint:
    """What a checkpoint holds; optimizer and rng are empty dicts for weights-only files."""

    config: RunConfig
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    optimizer_groups: list[dict]
    rng: dict[str, torch.Tensor]


def resolve(path: str | os.PathLike) -> Path:
    """A run directory (existing or not) or a .safetensors checkpoint file -> the checkpoint file."""
    p = Path(path)
    return p if p.suffix == ".safetensors" and not p.is_dir() else p / CHECKPOINT_NAME


def save_checkpoint(path: str | os.PathLike, model: SVG, config: RunConfig, step: int,
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write the checkpoint atomically; returns its path."""
    path = resolve(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    groups: list[dict] = []
    if optimizer is not None:
        state = optimizer.state_dict()
        for pid, pstate in state["state"].items():
            for name, value in pstate.items():
                tensors[f"optim.{pid}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        groups = state["param_groups"]
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"format": FORMAT, "config": config.to_json(), "step": str(step), "optimizer_groups": json.dumps(groups)}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    atomic_write_text(path.parent / "config.json", config.to_json())
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint file (or a run directory's checkpoint) with clear errors."""
    path = resolve(path)
    if not path.exists():
        raise SVGError(f"no checkpoint at {path}: train one with `svg train --out DIR` or pass its path")
    try:
        tensors = load_file(path)
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise SVGError(f"checkpoint {path} is corrupt or not a safetensors file ({e}); "
                       "restore it from a backup or retrain") from e
    if meta.get("format") != FORMAT:
        raise SVGError(f"{path} is not an svg-video checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
    try:
        config = RunConfig.from_dict(json.loads(meta["config"]))
        step, groups = int(meta["step"]), json.loads(meta.get("optimizer_groups", "[]"))
    except (KeyError, ValueError) as e:
        raise SVGError(f"checkpoint {path} has a damaged header ({e}); restore it from a backup") from e
    parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "optim": {}, "rng": {}}
    for key, value in tensors.items():
        prefix, _, rest = key.partition(".")
        parts.setdefault(prefix, {})[rest] = value
    return Checkpoint(config=config, step=step, model=parts["model"], optimizer=parts["optim"],
                      optimizer_groups=groups, rng=parts["rng"])


def read_config(path: str | os.PathLike) -> RunConfig:
    """The config saved in a checkpoint (or a run directory's), read from its header alone."""
    path = resolve(path)
    if not path.is_file():
        raise SVGError(f"--resume: no checkpoint at {path} to resume from; drop --resume to start a new run")
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise SVGError(f"{path} is not an svg-video checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
        return RunConfig.from_dict(json.loads(meta["config"]))
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise SVGError(f"checkpoint {path} is corrupt or not a safetensors file ({e}); "
                       "restore it from a backup or retrain") from e


def build_model(ckpt: Checkpoint, device: str | torch.device = "cpu") -> SVG:
    """Rebuild the model from the checkpoint's own config and load its weights (all finite)."""
    bad = [k for k, v in ckpt.model.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise SVGError(f"checkpoint weights are not finite (NaN or inf in {', '.join(bad[:3])}"
                       f"{', ...' if len(bad) > 3 else ''}): the file is damaged or the run diverged; "
                       "use an earlier checkpoint or retrain")
    model = SVG(ckpt.config.model)
    try:
        model.load_state_dict(ckpt.model, strict=True)
    except RuntimeError as e:
        raise SVGError(f"checkpoint weights do not match its config ({str(e).splitlines()[0]}); "
                       "the file was written by an incompatible version or edited by hand") from e
    return model.to(device)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[SVG, RunConfig]:
    """The trained model (in eval mode) and its config from a run directory or checkpoint file."""
    ckpt = load_checkpoint(path)
    return build_model(ckpt, device).eval(), ckpt.config


def restore_optimizer(optimizer: torch.optim.Optimizer, ckpt: Checkpoint) -> None:
    """Load the optimizer state saved by save_checkpoint."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in ckpt.optimizer.items():
        pid, _, name = key.partition(".")
        state.setdefault(int(pid), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": ckpt.optimizer_groups})
    except (ValueError, KeyError) as e:
        raise SVGError(f"optimizer state in the checkpoint does not fit the model: {e}") from e
