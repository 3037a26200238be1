"""The training loop: linear, resumable and reproducible.

Batch `step` is always made of dataset items step*B .. step*B+B-1, and every dataset item is a
pure function of (seed, index); the torch RNG (posterior noise) is saved in the checkpoint. So a
run interrupted and resumed from a checkpoint matches an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from svg_core.checkpoint import (
    CHECKPOINT_NAME,
    build_model,
    load_checkpoint,
    restore_optimizer,
    save_checkpoint,
)
from svg_core.config import RunConfig
from svg_core.datasets import build_dataset
from svg_core.errors import SVGError
from svg_core.model import SVG
from svg_core.sampling import generate

log = logging.getLogger("svg")


@dataclass
class TrainResult:
    """Where a run ended: its last step and loss terms."""

    run_dir: Path
    step: int
    loss: float
    mse: float
    kld: float


class StepBatches:
    """Batch sampler yielding the item indices of steps start, start+1, ... (never ends)."""

    def __init__(self, start_step: int, batch_size: int):
        self.start_step, self.batch_size = start_step, batch_size

    def __iter__(self):
        step = self.start_step
        while True:
            yield list(range(step * self.batch_size, (step + 1) * self.batch_size))
            step += 1


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SVGError("--device cuda was asked for but no CUDA GPU is visible to torch: use --device cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise SVGError(f"unknown device {name!r}: use cpu or cuda")
    return torch.device(name)


def _start(run_dir: Path, cfg: RunConfig, resume: bool, device: torch.device
           ) -> tuple[SVG, torch.optim.Adam, int, RunConfig]:
    """A fresh model and optimizer, or the ones saved in run_dir when resuming."""
    exists = (run_dir / CHECKPOINT_NAME).exists()
    if exists and not resume:
        raise SVGError(f"{run_dir} already holds a checkpoint: pass --resume to continue it or choose a new --out")
    if resume and not exists:
        raise SVGError(f"--resume: no checkpoint in {run_dir} to resume from; drop --resume to start a new run")
    if not resume:
        torch.manual_seed(cfg.train.seed)
        model = SVG(cfg.model).to(device)
        return model, _adam(model, cfg), 0, cfg
    ckpt = load_checkpoint(run_dir)
    if ckpt.config.model != cfg.model:
        log.info("resuming with the checkpoint's model config; the model options given were ignored")
    cfg = RunConfig(model=ckpt.config.model, train=cfg.train)
    model = build_model(ckpt, device)
    opt = _adam(model, cfg)
    restore_optimizer(opt, ckpt)
    torch.set_rng_state(ckpt.rng["torch"])
    return model, opt, ckpt.step, cfg


def _adam(model: SVG, cfg: RunConfig) -> torch.optim.Adam:
    # One Adam over all parameters equals the authors' five Adams with the same settings.
    return torch.optim.Adam(model.parameters(), lr=cfg.train.lr, betas=(0.9, 0.999))


def train(run_dir: str | os.PathLike, cfg: RunConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or continue training) a model into run_dir until cfg.train.steps."""
    from tqdm.auto import tqdm

    run_dir, tc = Path(run_dir), cfg.train
    device = resolve_device(tc.device)
    model, opt, step, cfg = _start(run_dir, cfg, resume, device)
    dataset = build_dataset(cfg, split="train")
    # The loader gets its own generator: drawing its base seed from the global RNG would make a
    # resumed run's posterior noise differ from an uninterrupted run's.
    loader = DataLoader(dataset, batch_sampler=StepBatches(step, tc.batch_size), num_workers=tc.num_workers,
                        persistent_workers=tc.num_workers > 0, generator=torch.Generator().manual_seed(tc.seed))
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if tc.amp == "bf16" else nullcontext())
    run_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=tc.steps, initial=step, disable=not progress, desc="train", unit="step")
    terms, t_last = None, time.perf_counter()
    for batch in loader:
        if step >= tc.steps:
            break
        x = batch["frames"].to(device, non_blocking=True)  # (B, T, C, H, W)
        model.train()
        with autocast:
            terms = model.training_loss(x, tc.n_past, tc.beta)
        if not torch.isfinite(terms.loss):
            raise SVGError(f"loss became {float(terms.loss)} at step {step + 1}: training stopped, the last good "
                           f"checkpoint in {run_dir} is kept; lower --lr or use --amp none")
        opt.zero_grad(set_to_none=True)
        terms.loss.backward()
        opt.step()
        step += 1
        if step % tc.log_every == 0 or step == tc.steps:
            now = time.perf_counter()
            rate = tc.batch_size * min(tc.log_every, step) / max(now - t_last, 1e-9)
            t_last = now
            _log_metrics(run_dir, step, terms, rate)
            bar.set_postfix(loss=f"{terms.loss.item():.4f}", mse=f"{terms.mse.item():.4f}",
                            kl=f"{terms.kld.item():.2f}", seq_s=f"{rate:.1f}")
        bar.update(1)
        if step % tc.checkpoint_every == 0 or step == tc.steps:
            save_checkpoint(run_dir, model, cfg, step, opt)
        if step % tc.sample_every == 0 or step == tc.steps:
            write_samples(model, cfg, run_dir / "samples", step)
    bar.close()
    if terms is None:
        return TrainResult(run_dir, step, math.nan, math.nan, math.nan)
    return TrainResult(run_dir, step, terms.loss.item(), terms.mse.item(), terms.kld.item())


def _log_metrics(run_dir: Path, step: int, terms, rate: float) -> None:
    record = {"step": step, "loss": terms.loss.item(), "mse": terms.mse.item(), "kld": terms.kld.item(),
              "seq_per_s": round(rate, 2), "time": time.time()}
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def write_samples(model: SVG, cfg: RunConfig, out_dir: Path, step: int, n_videos: int = 4,
                  n_samples: int = 3) -> Path:
    """GIF and PNG grid: per row one held-out video, columns ground truth | samples."""
    from svg_runtime.media import save_image, save_video, time_strip, video_grid

    tc = cfg.train
    data = build_dataset(cfg, split="sample")
    device = next(model.parameters()).device
    x = torch.stack([data[i]["frames"] for i in range(n_videos)]).to(device)  # (V, T, C, H, W)
    gen = generate(model, x[:, :tc.n_past], horizon=x.shape[1] - tc.n_past, n_samples=n_samples,
                   generator=torch.Generator().manual_seed(0))
    context = x[:, None, :tc.n_past].expand(-1, n_samples, -1, -1, -1, -1)
    samples = torch.cat([context, gen.frames], dim=2)  # (V, N, T, C, H, W)
    videos = torch.cat([x[:, None], samples], dim=1).float().cpu().numpy()
    grid = video_grid(videos, marked=tc.n_past)
    save_video(out_dir / f"step_{step:07d}.gif", grid)
    save_image(out_dir / f"step_{step:07d}.png", time_strip(grid))
    save_video(out_dir / "latest.gif", grid)
    return out_dir / f"step_{step:07d}.gif"


def read_metrics(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """metrics.jsonl as arrays per key."""
    rows = [json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {k: np.array([r[k] for r in rows]) for k in rows[0]} if rows else {}
