"""Multi-process training (DDP): the process group, this process's rank and device, per-rank
slices, agreement between ranks, and the torchrun relaunch.

Launch with `torchrun --nproc-per-node N -m svg_cli train ...`, or `svg train --nproc N`, which
re-launches itself through torch.distributed.run. NCCL on GPUs (one per process), gloo on CPU.

Which items and noise each step sees is svg_core.batches' (the same on 1 or N processes); the
training step module (DDP-wrapped when distributed) is svg_core.step's.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.distributed as dist

from svg_core.errors import SVGError

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

