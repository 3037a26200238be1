"""The training loop: linear, resumable, reproducible, and the same on 1 or N processes.

Batch `step` is always made of dataset items step*B .. step*B+B-1, every dataset item is a pure
function of (seed, index) and the posterior noise of a step a pure function of (seed, step). So a
run interrupted and resumed from a checkpoint matches an uninterrupted one, also when resumed with
another number of processes (see svg_core.batches). Only the main process (rank 0) writes
checkpoints, metrics and samples.

BatchNorm takes its training statistics over the B*T frames a process encodes in one call. Under
DDP without --sync-bn each process normalises over its own B/N*T frames, so N processes do not
train exactly the model one process would; with --sync-bn they do (up to float rounding).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from svg_core.batches import StepBatches, step_noise
from svg_core.checkpoint import (
    CHECKPOINT_NAME,
    build_model,
    load_checkpoint,
    restore_optimizer,
    save_checkpoint,
)
from svg_core.config import RunConfig, resume_config
from svg_core.curves import plot_training_curves, read_metrics
from svg_core.datasets import build_dataset
from svg_core.distributed import (
    DistInfo,
    StepStats,
    check_batch_split,
    init_distributed,
    rank_slice,
    reduce_step,
    resolve_device,
    run_on_main,
    shutdown_distributed,
)
from svg_core.errors import SVGError
from svg_core.faults import StopOnSignal, all_finite
from svg_core.model import SVG
from svg_core.sampling import generate
from svg_core.step import amp_context, grad_scaler, prepare_model, wrap_step
from svg_runtime.atomic import remove_stale_temp_files

log = logging.getLogger("svg")

__all__ = ["StepBatches", "TrainResult", "read_metrics", "plot_training_curves", "resolve_device", "train", "write_samples"]


@dataclass
class TrainResult:
    """Where a run ended: its last step and loss terms, and the signal that stopped it (if any)."""

    run_dir: Path
    step: int
    loss: float
    mse: float
    kld: float
    stopped_by: str | None = None  # "SIGINT" / "SIGTERM" when a signal ended the run early
    exit_code: int = 0  # what `svg train` exits with: 0, or 128 + the signal number


def _start(run_dir: Path, cfg: RunConfig, resume: bool, info: DistInfo
           ) -> tuple[SVG, torch.optim.Adam, int, RunConfig]:
    """A fresh model and optimizer, or the ones saved in run_dir when resuming."""
    if run_dir.exists() and not run_dir.is_dir():
        raise SVGError(f"--out {run_dir} is a file, not a run directory: choose another --out")
    exists = (run_dir / CHECKPOINT_NAME).exists()
    if exists and not resume:
        raise SVGError(f"{run_dir} already holds a checkpoint: pass --resume to continue it or choose a new --out")
    if resume and not exists:
        raise SVGError(f"--resume: no checkpoint in {run_dir} to resume from; drop --resume to start a new run")
    ckpt = load_checkpoint(run_dir) if resume else None
    if ckpt is None:
        torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
        model, step = SVG(cfg.model).to(info.device), 0
        if cfg.train.init_output_bias:
            model.decoder.set_output_level(_mean_pixel(cfg))
    else:
        cfg, _ = resume_config(ckpt.config, {**cfg.to_dict()["model"], **cfg.to_dict()["train"]})
        if ckpt.step >= cfg.train.steps:
            raise SVGError(f"{run_dir} is already at step {ckpt.step}: pass --steps above {ckpt.step} to train further")
        model, step = build_model(ckpt, info.device), ckpt.step
    model = prepare_model(model, cfg.train, info)
    # One Adam over all parameters equals the authors' five Adams with the same settings.
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, betas=(0.9, 0.999))
    if ckpt is not None:
        restore_optimizer(opt, ckpt)
        torch.set_rng_state(ckpt.rng["torch"])
    return model, opt, step, cfg


def _mean_pixel(cfg: RunConfig, n_items: int = 64) -> float:
    """Mean pixel of the first training items: where the decoder's output starts."""
    dataset = build_dataset(cfg, split="train")
    n = min(n_items, len(dataset))
    return float(torch.stack([dataset[i]["frames"] for i in range(n)]).mean()) if n else 0.5


def lr_at(step: int, cfg: RunConfig) -> float:
    """Learning rate of a step: constant as in the paper, after an optional linear warm-up, and
    falling linearly to 0 over the run's last `lr_decay` fraction of steps when that is > 0."""
    tc = cfg.train
    lr = tc.lr * min(1.0, (step + 1) / tc.warmup_steps) if tc.warmup_steps > 0 else tc.lr
    decay_steps = round(tc.lr_decay * tc.steps)
    if decay_steps > 0:
        lr *= min(1.0, (tc.steps - step) / decay_steps)
    return lr


def train(run_dir: str | os.PathLike, cfg: RunConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or continue training) a model into run_dir until cfg.train.steps.

    Under torchrun each process calls this; the environment says which rank it is.
    """
    info = init_distributed(cfg.train.device)
    try:
        with StopOnSignal() as stop:
            return _train(Path(run_dir), cfg, resume, progress and info.is_main_process, info, stop)
    finally:
        shutdown_distributed(info)


def _train(run_dir: Path, cfg: RunConfig, resume: bool, progress: bool, info: DistInfo,
           stop: StopOnSignal) -> TrainResult:
    from svg_runtime.progress import progress_bar as tqdm  # plain lines, not \r floods, in logs

    check_batch_split(cfg.train.batch_size, info)
    model, opt, step, cfg = _start(run_dir, cfg, resume, info)
    tc, device = cfg.train, info.device
    if info.is_main_process:  # before any work: a folder that cannot be written fails here
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(run_dir)  # left by a run killed mid-save
    step_fn = wrap_step(model, tc, info)
    dataset = build_dataset(cfg, split="train")
    loader = DataLoader(dataset, batch_sampler=StepBatches(step, tc.batch_size, info.rank, info.world_size),
                        num_workers=tc.num_workers, persistent_workers=tc.num_workers > 0)
    autocast, scaler = amp_context(tc.amp, device), grad_scaler(tc.amp, device)
    if info.is_main_process:
        log.info("training on %d process(es), %s, global batch %d", info.world_size, device, tc.batch_size)
    bar = tqdm(total=tc.steps, initial=step, disable=not progress, desc="train", unit="step")
    terms, saved_step, t_last = None, (step if resume else None), time.perf_counter()
    for batch in loader:
        if step >= tc.steps:
            break
        x = batch["frames"].to(device, non_blocking=True)  # (B/N, T, C, H, W): this rank's slice
        actions = batch["actions"].to(device, non_blocking=True) if cfg.model.has_actions else None  # (B/N, T-1, A)
        eps = None
        if cfg.model.has_latent:  # drawn for the global batch, so it does not depend on N
            eps = rank_slice(step_noise(tc.seed, step, tc.batch_size, tc.seq_len - 1, cfg.model.z_dim), info)
            eps = eps.to(device, non_blocking=True)  # (B/N, T-1, z_dim)
        for group in opt.param_groups:  # also overrides the lr saved in a resumed checkpoint
            group["lr"] = lr_at(step, cfg)
        model.train()
        with autocast:
            loss, mse, kld = step_fn(x, eps, actions)
        terms = reduce_step(info, loss, mse, kld, stop.requested)  # the same on every rank
        if not math.isfinite(terms.loss):
            kept = f"the checkpoint of step {saved_step} in {run_dir} is kept" if saved_step is not None \
                else "no checkpoint was saved yet"
            raise SVGError(f"loss became {terms.loss} at step {step + 1}: training stopped, {kept}; "
                           "lower --lr or use --amp none")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        step += 1
        if info.is_main_process and (step % tc.log_every == 0 or step == tc.steps or terms.stop):
            now = time.perf_counter()
            rate = tc.batch_size * min(tc.log_every, step) / max(now - t_last, 1e-9)
            t_last = now
            _log_metrics(run_dir, step, terms, rate, opt.param_groups[0]["lr"])
            bar.set_postfix(loss=f"{terms.loss:.4f}", mse=f"{terms.mse:.4f}", kl=f"{terms.kld:.2f}", seq_s=f"{rate:.1f}")
        bar.update(1)
        if step % tc.checkpoint_every == 0 or step == tc.steps or terms.stop:
            run_on_main(info, _save, run_dir, model, cfg, step, opt)
            saved_step = step
        if info.is_main_process and (step % tc.sample_every == 0 or step == tc.steps):
            write_samples(model, cfg, run_dir / "samples", step)
            if (run_dir / "metrics.jsonl").exists():  # none yet when samples come before the first log
                plot_training_curves(run_dir)
        if terms.stop:
            break
    bar.close()
    if terms is None:
        return TrainResult(run_dir, step, math.nan, math.nan, math.nan)
    result = TrainResult(run_dir, step, terms.loss, terms.mse, terms.kld)
    if terms.stop:  # some rank received SIGINT/SIGTERM (torchrun forwards SIGTERM when it is stopped)
        signum = stop.signum or signal.SIGTERM
        result.stopped_by, result.exit_code = signal.Signals(signum).name, 128 + signum
        if info.is_main_process:
            log.info("stopped by %s at step %d; checkpoint saved in %s", result.stopped_by, step, run_dir)
    return result


def _save(run_dir: Path, model: SVG, cfg: RunConfig, step: int, opt: torch.optim.Optimizer) -> None:
    """Save a checkpoint; weights gone non-finite or a failed write keep the previous checkpoint."""
    if not all_finite(model):
        raise SVGError(f"weights became non-finite at step {step}: not saved, the previous checkpoint in "
                       f"{run_dir} is kept; lower --lr or use --amp none")
    try:
        save_checkpoint(run_dir, model, cfg, step, opt)
    except OSError as e:
        raise SVGError(f"could not save the checkpoint of step {step} in {run_dir} ({e}); the previous "
                       "checkpoint is intact: free disk space and continue with --resume") from e


def _log_metrics(run_dir: Path, step: int, terms: StepStats, rate: float, lr: float) -> None:
    record = {"step": step, "loss": terms.loss, "mse": terms.mse, "kld": terms.kld, "lr": lr,
              "seq_per_s": round(rate, 2), "time": time.time()}
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def write_samples(model: SVG, cfg: RunConfig, out_dir: Path, step: int, n_videos: int = 4,
                  n_samples: int = 3) -> Path:
    """GIF and PNG grid: per row one held-out video, columns ground truth | samples."""
    from svg_runtime.media import save_image, save_video, time_grid, video_grid

    tc = cfg.train
    data = build_dataset(cfg, split="sample")
    device = next(model.parameters()).device
    items = [data[i] for i in range(n_videos)]
    x = torch.stack([item["frames"] for item in items]).to(device)  # (V, T, C, H, W)
    ctx_actions = actions = None
    if cfg.model.has_actions:  # the recorded actions: samples show the futures of what was done
        a = torch.stack([item["actions"] for item in items]).to(device)  # (V, T-1, A)
        ctx_actions, actions = a[:, :tc.n_past - 1], a[:, None, tc.n_past - 1:]
    gen = generate(model, x[:, :tc.n_past], horizon=x.shape[1] - tc.n_past, n_samples=n_samples,
                   generator=torch.Generator().manual_seed(0), context_actions=ctx_actions, actions=actions)
    context = x[:, None, :tc.n_past].expand(-1, n_samples, -1, -1, -1, -1)
    futures = gen.frames.reshape(len(x), n_samples, *gen.frames.shape[-4:])  # (V, N, T', C, H, W)
    samples = torch.cat([context, futures], dim=2)  # (V, N, T, C, H, W)
    videos = torch.cat([x[:, None], samples], dim=1).float().cpu().numpy()
    variants = ["ground truth", *(f"sample {i + 1}" for i in range(n_samples))]
    grid = video_grid(videos, marked=tc.n_past, row_labels=[f"video {v + 1}" for v in range(n_videos)],
                      col_labels=variants)
    save_video(out_dir / f"step_{step:07d}.gif", grid)
    save_image(out_dir / f"step_{step:07d}.png", time_grid(videos, marked=tc.n_past, variant_labels=variants))
    save_video(out_dir / "latest.gif", grid)
    return out_dir / f"step_{step:07d}.gif"
