"""Multi-process training (DDP): process group, per-rank data and noise, agreement between ranks.

Launch with `torchrun --nproc-per-node N -m svg_cli train ...`, or `svg train --nproc N`, which
re-launches itself through torch.distributed.run. NCCL on GPUs (one per process), gloo on CPU.

The global batch of step s is always dataset items s*B .. s*B+B-1 and its posterior noise a pure
function of (seed, s); process r of N takes the r-th contiguous slice of B/N items. So the global
batch does not depend on N, and a run resumed with another number of processes continues on
exactly the data and noise it would have seen.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from svg_core.config import TrainConfig
from svg_core.errors import SVGError
from svg_core.model import SVG
from svg_core.sync_bn import convert_sync_batchnorm

log = logging.getLogger("svg")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: rank, number of processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # we created the process group and destroy it at the end

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SVGError("--device cuda was asked for but no CUDA GPU is visible to torch: use --device cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise SVGError(f"unknown device {name!r}: use cpu or cuda")
    return torch.device(name)


def init_distributed(device_name: str) -> DistInfo:
    """Join the process group that torchrun's environment (RANK, WORLD_SIZE, ...) describes, if any."""
    device = resolve_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise SVGError(f"process {local_rank} has no GPU: {torch.cuda.device_count()} visible; "
                           "start at most one process per GPU (--nproc)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, device, owns)


def shutdown_distributed(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def check_batch_split(batch_size: int, info: DistInfo) -> int:
    """Sequences per process; the global batch must split evenly."""
    if batch_size % info.world_size:
        raise SVGError(f"batch size {batch_size} does not split evenly over {info.world_size} processes: "
                       f"use a multiple of {info.world_size} (--batch-size is the global batch)")
    return batch_size // info.world_size


class StepBatches:
    """Batch sampler: this rank's item indices of steps start, start+1, ... (never ends)."""

    def __init__(self, start_step: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start_step, self.batch_size = start_step, batch_size
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        per_rank, step = self.batch_size // self.world_size, self.start_step
        while True:
            first = step * self.batch_size + self.rank * per_rank
            yield list(range(first, first + per_rank))
            step += 1


def step_noise(seed: int, step: int, batch_size: int, n_steps: int, z_dim: int) -> torch.Tensor:
    """Posterior noise of the whole global batch of `step`, shape = (B, n_steps, z_dim)."""
    key = int(np.random.SeedSequence([seed, step, 0x5E]).generate_state(1, np.uint64)[0])
    return torch.randn(batch_size, n_steps, z_dim, generator=torch.Generator().manual_seed(key))


def rank_slice(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's contiguous part of a global-batch tensor (axis 0)."""
    per_rank = x.shape[0] // info.world_size
    return x[info.rank * per_rank:(info.rank + 1) * per_rank]


class StepStats(NamedTuple):
    """A step's loss terms averaged over all ranks, and whether any rank asked to stop."""

    loss: float
    mse: float
    kld: float
    stop: bool


def reduce_step(info: DistInfo, loss: torch.Tensor, mse: torch.Tensor, kld: torch.Tensor,
                stop: bool) -> StepStats:
    """The global batch's loss terms and every rank's stop request, with one small all-reduce.

    It keeps every rank's decision to stop (a signal, a non-finite loss) the same, so that no rank
    is left waiting in a collective.
    """
    packed = torch.stack([loss.detach().float(), mse.detach().float(), kld.detach().float(),
                          torch.tensor(float(stop), device=loss.device)])
    if info.distributed:
        dist.all_reduce(packed)
    loss_v, mse_v, kld_v, n_stop = packed.tolist()
    n = info.world_size
    return StepStats(loss_v / n, mse_v / n, kld_v / n, n_stop > 0)


def run_on_main(info: DistInfo, fn: Callable[..., object], *args: object) -> None:
    """fn(*args) on the main process only, then a barrier that also tells every rank whether it failed."""
    error: BaseException | None = None
    if info.is_main_process:
        try:
            fn(*args)
        except Exception as e:  # re-raised below, after the other ranks know
            error = e
    if info.distributed:
        ok = torch.tensor([0.0 if error else 1.0], device=info.device)
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        if error is None and ok.item() == 0:
            raise SVGError("the main process (rank 0) failed to save a checkpoint: see its error message")
    if error is not None:
        raise error


class TrainingStep(nn.Module):
    """The model's training loss as forward(x, eps) -> (loss, mse, kld): what DDP and compile wrap."""

    def __init__(self, model: SVG, n_past: int, beta: float):
        super().__init__()
        self.model, self.n_past, self.beta = model, n_past, beta

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None, actions: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        terms = self.model.training_loss(x, self.n_past, self.beta, eps, actions)
        return terms.loss, terms.mse, terms.kld


def prepare_model(model: SVG, tc: TrainConfig, info: DistInfo) -> SVG:
    """SyncBatchNorm and channels_last applied in place (Parameters kept: build the optimizer after)."""
    if tc.sync_bn and info.distributed:
        convert_sync_batchnorm(model, info.device.type)
    if tc.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def wrap_step(model: SVG, tc: TrainConfig, info: DistInfo) -> nn.Module:
    """The module the loop calls: the loss wrapper, under DDP when distributed, compiled on request."""
    step: nn.Module = TrainingStep(model, tc.n_past, tc.beta)
    if info.distributed:
        ids = [info.device.index] if info.device.type == "cuda" else None
        step = nn.parallel.DistributedDataParallel(step, device_ids=ids)
    if tc.compile:
        step = torch.compile(step)
    return step


def torchrun_command(nproc: int, cli_args: list[str]) -> list[str]:
    """`python -m torch.distributed.run ... -m svg_cli ARGS` for nproc processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "svg_cli", *cli_args]


def relaunch_with_torchrun(nproc: int, cli_args: list[str]) -> int:
    """Run the CLI with cli_args in nproc processes through torchrun; returns the exit code.

    torchrun runs in its own session so that a Ctrl-C reaches it once, through us: it forwards
    SIGINT/SIGTERM to the workers, which finish their step, save a checkpoint and stop.
    """
    if nproc < 1:
        raise SVGError(f"--nproc must be >= 1, got {nproc}")
    proc = subprocess.Popen(torchrun_command(nproc, cli_args), start_new_session=True)
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not received:
            received.append(signum)
            proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return 128 + received[0] if received and code != 0 else code

