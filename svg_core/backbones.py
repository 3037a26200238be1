"""Frame encoders and decoders (DCGAN and VGG, 64x64 and 128x128) with skip connections.

The encoder maps a frame (B, C, H, W) in [0, 1] to a code h (B, g_dim) in [-1, 1] and a list of
feature maps (skips, shallow to deep). The decoder mirrors it: it maps a code g (B, g_dim) and the
skips back to a frame in [0, 1], concatenating each skip on the channel axis.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from svg_core.config import ModelConfig


def _conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int, pad: int, transpose: bool = False) -> nn.Sequential:
    conv_cls = nn.ConvTranspose2d if transpose else nn.Conv2d
    return nn.Sequential(conv_cls(c_in, c_out, kernel, stride, pad), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def stage_widths(cfg: ModelConfig) -> list[int]:
    """Output channels of each encoder stage, shallow to deep (one skip per stage)."""
    n = cfg.width
    widths = [n, 2 * n, 4 * n, 8 * n]
    return widths + [8 * n] if cfg.image_size == 128 else widths


def _vgg_depths(n_stages: int) -> list[int]:
    # VGG stages hold 2, 2, 3, 3 (, 3) conv layers, as in the paper's VGG16-style encoder.
    return [2, 2, 3, 3, 3][:n_stages]


class Encoder(nn.Module):
    """x (B, C, H, W) -> h (B, g_dim), skips [(B, w_i, H / 2^i, W / 2^i) for each stage]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        widths = stage_widths(cfg)
        self.vgg = cfg.backbone == "vgg"
        stages, c_in = [], cfg.channels
        for i, w in enumerate(widths):
            if self.vgg:
                depth = _vgg_depths(len(widths))[i]
                layers = [_conv_bn_act(c_in if j == 0 else w, w, 3, 1, 1) for j in range(depth)]
                stages.append(nn.Sequential(*layers))
            else:
                stages.append(_conv_bn_act(c_in, w, 4, 2, 1))
            c_in = w
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(2, 2)
        self.head = nn.Sequential(nn.Conv2d(c_in, cfg.g_dim, 4, 1, 0), nn.BatchNorm2d(cfg.g_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i, stage in enumerate(self.stages):
            if self.vgg and i > 0:
                x = self.pool(x)
            x = stage(x)
            skips.append(x)
        if self.vgg:
            x = self.pool(x)
        h = self.head(x)  # (B, g_dim, 1, 1)
        return h.flatten(1), skips


class Decoder(nn.Module):
    """g (B, g_dim), skips -> x (B, C, H, W) in [0, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        widths = stage_widths(cfg)
        self.vgg = cfg.backbone == "vgg"
        self.stem = _conv_bn_act(cfg.g_dim, widths[-1], 4, 1, 0, transpose=True)  # 1x1 -> 4x4
        stages = []
        for i in reversed(range(len(widths))):
            c_in = 2 * widths[i]  # previous output concatenated with the skip
            if self.vgg:
                stages.append(self._vgg_stage(c_in, widths, i, cfg.channels))
            elif i > 0:
                stages.append(_conv_bn_act(c_in, widths[i - 1], 4, 2, 1, transpose=True))
            else:
                stages.append(nn.Sequential(nn.ConvTranspose2d(c_in, cfg.channels, 4, 2, 1), nn.Sigmoid()))
        self.stages = nn.ModuleList(stages)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    @staticmethod
    def _vgg_stage(c_in: int, widths: list[int], i: int, channels: int) -> nn.Sequential:
        depth, w = _vgg_depths(len(widths))[i], widths[i]
        layers: list[nn.Module] = [_conv_bn_act(c_in, w, 3, 1, 1)]
        layers += [_conv_bn_act(w, w, 3, 1, 1) for _ in range(depth - 2)]
        if i > 0:
            layers.append(_conv_bn_act(w, widths[i - 1], 3, 1, 1))
        else:
            layers += [nn.ConvTranspose2d(w, channels, 3, 1, 1), nn.Sigmoid()]
        return nn.Sequential(*layers)

    def set_output_level(self, level: float) -> None:
        """Start the output at `level` (e.g. the data's mean pixel) instead of sigmoid(0) = 0.5.

        With a zero bias every pixel starts mid-grey, and the MSE gradient through a sigmoid near 0
        shrinks as s(1 - s): the black background of SM-MNIST then stays a haze for thousands of
        steps, and SSIM punishes haze hard. A fix of the initialisation, not a change of the model.
        """
        level = min(max(level, 1e-4), 1 - 1e-4)
        last = [m for m in self.stages[-1] if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
        with torch.no_grad():
            last.bias.fill_(math.log(level / (1 - level)))

    def forward(self, g: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.stem(g[:, :, None, None])  # (B, w_last, 4, 4)
        for stage, skip in zip(self.stages, reversed(skips), strict=True):
            if self.vgg:
                x = self.up(x)
            x = stage(torch.cat([x, skip], dim=1))
        return x
