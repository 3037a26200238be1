"""Transposed convolutions rewritten as plain convolutions, for int8 graphs on the CPU.

onnxruntime's CPU provider has no quantized ConvTranspose: in a QDQ graph it dequantizes the
weights at every call and runs fp32, so the decoder (2/3 of the FLOPs) would stay fp32. A
ConvTranspose2d of stride s is s*s ordinary convolutions, one per output phase (the output pixels
(s*m + a, s*n + b) for fixed a, b), each over exactly the kernel taps that reach that phase, so
no FLOP is added. The phases are then interleaved by one DepthToSpace (DCR).

Every bundle (export_model) also gets the decoder's stem (a transposed convolution of a 1x1 code)
and the encoder's head (a convolution whose kernel covers its whole input) as matmuls: onnxruntime
ran them as convolutions at 11 and 6 ms per step at batch 100 (0.2 GFLOP each), as Gemm at ~1 ms.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def depth_to_space_dcr(x: torch.Tensor, s: int) -> torch.Tensor:
    """(B, s*s*C, H, W), phase-major channels -> (B, C, s*H, s*W). Exports as ONE DepthToSpace
    (mode DCR): the same permutation written as Reshape/Transpose runs 2.5x slower in onnxruntime."""
    b, c_all, h, w = x.shape
    c = c_all // (s * s)
    if torch.onnx.is_in_onnx_export():
        return torch.onnx.ops.symbolic("DepthToSpace", [x], attrs={"blocksize": s, "mode": "DCR"},
                                       dtype=x.dtype, shape=[b, c, s * h, s * w], version=13)
    return x.view(b, s, s, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, c, s * h, s * w)


def _phase_taps(a: int, k: int, s: int, p: int) -> tuple[list[int], int]:
    """Kernel taps (in correlation order) reaching output phase a, and the input's left padding.

    Output o = s*m + a receives x[i] * w[o + p - s*i]; with r = (a + p) % s, q = (a + p) // s the
    taps are w[s*j + r] at x[m + q - j], j = 0 .. J-1."""
    r, q = (a + p) % s, (a + p) // s
    n_taps = len(range(r, k, s))
    return [s * (n_taps - 1 - t) + r for t in range(n_taps)], n_taps - 1 - q


class PhaseConvTranspose2d(nn.Module):
    """A ConvTranspose2d (square kernel, stride and padding; no output padding, dilation or groups)
    as stride**2 convolutions and a DepthToSpace."""

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        (k, k2), (s, s2), (p, p2) = conv.kernel_size, conv.stride, conv.padding
        if k != k2 or s != s2 or p != p2 or conv.groups != 1 or conv.dilation != (1, 1) or any(conv.output_padding):
            raise ValueError(f"cannot rewrite {conv}: only square kernels, strides and paddings without "
                             "groups, dilation or output padding")
        if conv.bias is None:
            raise ValueError(f"cannot rewrite {conv}: it has no bias")
        self.k, self.s, self.p = k, s, p
        w = conv.weight.detach()  # (C_in, C_out, k, k)
        self.weights = nn.ParameterList()
        self.pads: list[int] = []
        for a in range(s):
            for b in range(s):
                taps_h, left_h = _phase_taps(a, k, s, p)
                taps_w, left_w = _phase_taps(b, k, s, p)
                self.weights.append(nn.Parameter(w[:, :, taps_h][:, :, :, taps_w].transpose(0, 1).contiguous()))
                self.pads.append((left_h, left_w))
        self.bias = nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_h, n_w = x.shape[-2:]
        out_h, out_w = (n_h - 1) * self.s - 2 * self.p + self.k, (n_w - 1) * self.s - 2 * self.p + self.k
        if out_h % self.s or out_w % self.s:
            raise ValueError(f"output size {out_h}x{out_w} is not a multiple of the stride {self.s}")
        m_h, m_w = out_h // self.s, out_w // self.s
        phases = []
        for w, (left_h, left_w) in zip(self.weights, self.pads, strict=True):
            j_h, j_w = w.shape[-2:]
            pad = (left_w, m_w - n_w - left_w + j_w - 1, left_h, m_h - n_h - left_h + j_h - 1)
            if min(pad) < 0:
                raise ValueError(f"cannot rewrite a transposed convolution that crops its input (pads {pad})")
            phases.append(F.conv2d(F.pad(x, pad) if any(pad) else x, w, self.bias))  # (B, C_out, m_h, m_w)
        if self.s == 1:
            return phases[0]
        return depth_to_space_dcr(torch.cat(phases, dim=1), self.s)


class MatmulConvTranspose2d(nn.Module):
    """A ConvTranspose2d applied to a 1x1 input (B, C_in, 1, 1) -> (B, C_out, k, k) as one Gemm."""

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        self.c_out, self.k = conv.out_channels, conv.kernel_size
        k_h, k_w = self.k
        self.weight = nn.Parameter(conv.weight.detach().reshape(conv.in_channels, -1).t().contiguous())
        self.bias = nn.Parameter(conv.bias.detach().repeat_interleave(k_h * k_w).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (1, 1):
            raise ValueError(f"MatmulConvTranspose2d takes a 1x1 input, got {tuple(x.shape)}")
        return F.linear(x.flatten(1), self.weight, self.bias).view(x.shape[0], self.c_out, *self.k)


class _Conv1x1Stem(nn.Module):
    """MatmulConvTranspose2d's product as a 1x1 Conv (which int8 quantization covers, unlike Gemm)."""

    def __init__(self, stem: MatmulConvTranspose2d):
        super().__init__()
        self.c_out, self.k = stem.c_out, stem.k
        self.conv = nn.Conv2d(stem.weight.shape[1], stem.weight.shape[0], 1)
        with torch.no_grad():
            self.conv.weight.copy_(stem.weight[:, :, None, None])
            self.conv.bias.copy_(stem.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).view(x.shape[0], self.c_out, *self.k)  # (B, C_out*k*k, 1, 1) -> (B, C_out, k, k)


class MatmulConv2d(nn.Module):
    """A Conv2d without padding whose kernel covers its whole input: (B, C_in, k, k) -> (B, C_out, 1, 1)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if any(conv.padding) or conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError(f"cannot write {conv} as a matmul: it pads, groups or dilates")
        self.k = conv.kernel_size
        self.weight = nn.Parameter(conv.weight.detach().reshape(conv.out_channels, -1).clone())
        self.bias = nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.k:
            raise ValueError(f"MatmulConv2d takes inputs of the kernel's size {self.k}, got {tuple(x.shape)}")
        return F.linear(x.flatten(1), self.weight, self.bias)[:, :, None, None]

    def to_conv(self) -> nn.Conv2d:
        conv = nn.Conv2d(self.weight.shape[1] // (self.k[0] * self.k[1]), len(self.weight), self.k)
        with torch.no_grad():
            conv.weight.copy_(self.weight.view_as(conv.weight))
            conv.bias.copy_(self.bias)
        return conv


def matmul_stem_and_head(model: nn.Module) -> None:
    """Write an SVG model's decoder stem and encoder head (see the module docstring) as matmuls, in place."""
    model.decoder.stem[0] = MatmulConvTranspose2d(model.decoder.stem[0])
    model.encoder.head[0] = MatmulConv2d(model.encoder.head[0])


def rewrite_transposed_convs(model: nn.Module, keep_out_channels: int | None = None) -> int:
    """Replace every nn.ConvTranspose2d in model (but those with keep_out_channels outputs) by a
    PhaseConvTranspose2d, and the matmul forms of the stem and head by convolutions, in place;
    returns how many transposed convolutions went."""
    n_done = 0
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ConvTranspose2d) and child.out_channels != keep_out_channels:
                setattr(parent, name, PhaseConvTranspose2d(child))
                n_done += 1
            elif isinstance(child, MatmulConvTranspose2d):
                setattr(parent, name, _Conv1x1Stem(child))
            elif isinstance(child, MatmulConv2d):
                setattr(parent, name, child.to_conv())
    return n_done


def phase_model(model: nn.Module, keep_out_channels: int | None = None) -> nn.Module:
    """A copy of an export-ready model (BatchNorm folded) with convolutions only, stem and head as
    Conv (quantized in int8 graphs, unlike Gemm); transposed convolutions with keep_out_channels
    outputs (the decoder's last layer, which writes the frame) stay as they are."""
    out = copy.deepcopy(model)
    rewrite_transposed_convs(out, keep_out_channels)
    return out
