"""Frame metrics in batched torch: PSNR and SSIM, matching scikit-image to ~1e-5.

- PSNR = 10 log10(1 / MSE) per frame and channel (data range 1), averaged over channels. Identical
  frames give MSE 0 and an infinite PSNR: MSE is clamped at `MSE_FLOOR` = 1e-10, so PSNR is capped
  at `PSNR_CAP_DB` = 100 dB.
- SSIM "gaussian" (the protocol's): 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range 1,
  population covariance -- `skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)`. SSIM "uniform7": scikit-image's defaults, a 7x7 box
  window with sample covariance. Both average the SSIM map over the pixels whose window lies inside
  the image (scikit-image crops the border), then over channels.

Frames are (..., C, H, W) in [0, 1]; every function returns one value per frame, shape (...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SSIM_WINDOWS = ("gaussian", "uniform7")
MSE_FLOOR = 1e-10
PSNR_CAP_DB = 10.0 * math.log10(1.0 / MSE_FLOOR)  # 100 dB
K1, K2 = 0.01, 0.03
GAUSS_SIGMA, GAUSS_TRUNCATE = 1.5, 3.5  # scikit-image: radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
CHUNK = 4096  # images per SSIM call: bounds memory at about 5 * CHUNK * H * W floats


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"frames to compare must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() < 3:
        raise ValueError(f"frames must be (..., C, H, W), got shape {tuple(x.shape)}")


def mse_per_channel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per frame and channel: (..., C, H, W) -> (..., C), in float32."""
    _check_pair(x, y)
    return ((x.float() - y.float()) ** 2).mean(dim=(-2, -1))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per frame, (..., C, H, W) -> (...): per channel 10 log10(1 / max(MSE, 1e-10)), then mean."""
    mse = mse_per_channel(x, y).clamp_min(MSE_FLOOR)
    return (-10.0 * torch.log10(mse)).mean(dim=-1)


def gaussian_taps(sigma: float = GAUSS_SIGMA, truncate: float = GAUSS_TRUNCATE) -> torch.Tensor:
    """The 1-D Gaussian of scipy.ndimage.gaussian_filter (normalised, radius int(truncate*sigma+0.5))."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return (taps / taps.sum()).float()


def _window(kind: str) -> tuple[torch.Tensor, float]:
    """Separable 1-D taps and the covariance normalisation of an SSIM window kind."""
    if kind == "gaussian":
        return gaussian_taps(), 1.0
    if kind == "uniform7":
        n_p = 7 * 7
        return torch.full((7,), 1.0 / 7.0), n_p / (n_p - 1.0)  # scikit-image's sample covariance
    raise ValueError(f"unknown SSIM window {kind!r}: choose one of {', '.join(SSIM_WINDOWS)}")


def _filter_valid(maps: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of maps (B, 1, H, W) -> (B, 1, H-k+1, W-k+1).

    scikit-image filters with reflect padding and then crops (k-1)/2 pixels from each border; the
    kept pixels never see the padding, so a valid convolution gives the same numbers.
    """
    k = taps.numel()
    taps = taps.to(maps.device, maps.dtype)
    out = F.conv2d(maps, taps.view(1, 1, 1, k))
    return F.conv2d(out, taps.view(1, 1, k, 1))


def ssim(x: torch.Tensor, y: torch.Tensor, window: str = "gaussian") -> torch.Tensor:
    """Mean SSIM per frame (data range 1), (..., C, H, W) -> (...); see the module docstring."""
    _check_pair(x, y)
    taps, cov_norm = _window(window)
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    if min(h, w) < taps.numel():
        raise ValueError(f"frames of {h}x{w} pixels are smaller than the {taps.numel()}-pixel SSIM window")
    xs, ys = x.reshape(-1, 1, h, w).float(), y.reshape(-1, 1, h, w).float()
    out = torch.cat([_ssim_maps(xs[i:i + CHUNK], ys[i:i + CHUNK], taps, cov_norm)
                     for i in range(0, xs.shape[0], CHUNK)])
    return out.view(*lead, c).mean(dim=-1)


def _ssim_maps(x: torch.Tensor, y: torch.Tensor, taps: torch.Tensor, cov_norm: float) -> torch.Tensor:
    """x, y (B, 1, H, W) -> mean SSIM (B,)."""
    b = x.shape[0]
    stats = _filter_valid(torch.cat([x, y, x * x, y * y, x * y]), taps)  # (5B, 1, H', W')
    ux, uy, uxx, uyy, uxy = stats.split(b)
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = K1**2, K2**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def frame_metrics(pred: torch.Tensor, target: torch.Tensor, window: str = "gaussian") -> dict[str, torch.Tensor]:
    """{"psnr", "ssim", "mse"} per frame for pred and target of the same shape (..., C, H, W)."""
    return {"psnr": psnr(pred, target), "ssim": ssim(pred, target, window),
            "mse": mse_per_channel(pred, target).mean(dim=-1)}
