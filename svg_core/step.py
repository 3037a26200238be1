"""The training step as one module: the loss wrapper, the model's layout and compilation, autocast.

This is what runs on every process, one or many: `train` calls `wrap_step(...)(x, eps)` under
`amp_context` and scales the loss with `grad_scaler`. DDP wrapping (only when distributed) lives
here too because it wraps the same module; the process group itself is svg_core.distributed's.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

import torch
from torch import nn

from svg_core.config import TrainConfig
from svg_core.model import SVG
from svg_core.sync_bn import convert_sync_batchnorm

if TYPE_CHECKING:
    from svg_core.distributed import DistInfo

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_context(amp: str, device: torch.device | str) -> AbstractContextManager:
    """The autocast context for an --amp mode (none, bf16, fp16); weights stay fp32."""
    dtype = AMP_DTYPES.get(amp)
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype is not None else nullcontext()


def grad_scaler(amp: str, device: torch.device | str) -> torch.amp.GradScaler:
    """The gradient scaler for an --amp mode: a no-op unless fp16."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=amp == "fp16")


class TrainingStep(nn.Module):
    """The model's training loss as forward(x, eps) -> (loss, mse, kld): what DDP and compile wrap."""

    def __init__(self, model: SVG, n_past: int, beta: float, motion_weight: float = 0.0, recon: str = "mse"):
        super().__init__()
        self.model, self.n_past, self.beta, self.motion_weight = model, n_past, beta, motion_weight
        self.recon = recon

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None, actions: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        terms = self.model.training_loss(x, self.n_past, self.beta, eps, actions, self.motion_weight,
                                         self.recon)
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
    step: nn.Module = TrainingStep(model, tc.n_past, tc.beta, tc.motion_weight, tc.recon)
    if info.distributed:
        ids = [info.device.index] if info.device.type == "cuda" else None
        step = nn.parallel.DistributedDataParallel(step, device_ids=ids)
    if tc.compile:
        step = torch.compile(step)
    return step
