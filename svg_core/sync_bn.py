"""BatchNorm with statistics over all processes, on any backend (gloo on CPU included).

torch's nn.SyncBatchNorm runs only on GPUs; on CUDA we use it. On CPU, ProcessGroupSyncBatchNorm
takes the mean and the variance over every process's frames with two autograd-aware all-reduces
(the mean first, then the centred sum of squares, so no E[x^2] - E[x]^2 cancellation). Gradients
then flow across processes exactly as in one process holding the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; its gradient is the sum of every process's gradient (also a sum)."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Autograd-aware sum of x over all processes."""
    return _AllReduceSum.apply(x)


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class ProcessGroupSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are taken over all processes (same state_dict keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or _world_size() == 1:
            return super().forward(x)
        xf = x.float()  # statistics in fp32 under autocast
        n_ch = x.shape[1]
        local = torch.cat([xf.sum(dim=(0, 2, 3)), xf.new_full((1,), xf.numel() / n_ch)])
        total = all_reduce(local)  # (C + 1,): sums per channel, frame-pixel count
        count = total[n_ch].detach()
        mean = total[:n_ch] / count  # (C,)
        centred = xf - mean[None, :, None, None]
        var = all_reduce((centred * centred).sum(dim=(0, 2, 3))) / count  # biased, as BN normalises
        self._update_running_stats(mean.detach(), var.detach(), float(count.item()))
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        if not self.track_running_stats:
            return
        self.num_batches_tracked += 1
        # momentum None means a cumulative average, as in nn.BatchNorm2d
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def convert_sync_batchnorm(module: nn.Module, device_type: str) -> nn.Module:
    """module with every BatchNorm2d synchronised across processes (weights and buffers kept).

    CUDA: torch's nn.SyncBatchNorm (fused kernels). Other devices: ProcessGroupSyncBatchNorm.
    """
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _replace_bn(module)


def _replace_bn(module: nn.Module) -> nn.Module:
    if type(module) is nn.BatchNorm2d:
        sync = ProcessGroupSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                         module.track_running_stats)
        # share the Parameters and buffers (as nn.SyncBatchNorm.convert_sync_batchnorm does), so an
        # optimizer built before the conversion still holds them
        if module.affine:
            sync.weight, sync.bias = module.weight, module.bias
        if module.track_running_stats:
            sync.running_mean, sync.running_var = module.running_mean, module.running_var
            sync.num_batches_tracked = module.num_batches_tracked
        sync.train(module.training)
        return sync
    for name, child in module.named_children():
        module.add_module(name, _replace_bn(child))
    return module
