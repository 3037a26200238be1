"""PSNR and SSIM against scikit-image on real SM-MNIST frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from svg_core.data import SMMNISTConfig, make_test_set
from svg_core.evaluation.metrics import PSNR_CAP_DB, gaussian_taps, psnr, ssim

SKIMAGE_ARGS = {
    "gaussian": dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, K1=0.01, K2=0.03),
    "uniform7": dict(win_size=7),  # scikit-image's defaults
}


@pytest.fixture(scope="module")
def digits(test_digits) -> np.ndarray:
    return test_digits


@pytest.fixture(scope="module")
def pairs(digits) -> tuple[np.ndarray, np.ndarray]:
    """Real frames (float64 in [0, 1]) and imperfect predictions of them: the next frame, a blurred
    noisy version, and an exact copy. shape = (n, 1, 64, 64) each."""
    frames = make_test_set(digits, SMMNISTConfig(num_digits=2, seq_len=4), 6, seed=3)["frames"] / 255.0
    rng = np.random.default_rng(0)
    a = frames[:, :3].reshape(-1, 1, 64, 64)
    nxt = frames[:, 1:].reshape(-1, 1, 64, 64)
    noisy = np.clip(0.7 * a + 0.2 + rng.normal(0, 0.05, a.shape), 0, 1)
    return np.concatenate([a, a, a]), np.concatenate([nxt, noisy, a])


@pytest.mark.parametrize("window", ["gaussian", "uniform7"])
def test_ssim_matches_scikit_image(pairs, window):
    a, b = pairs
    ours = ssim(torch.from_numpy(a), torch.from_numpy(b), window).numpy()
    ref = np.array([structural_similarity(x[0], y[0], data_range=1.0, **SKIMAGE_ARGS[window]) for x, y in zip(a, b, strict=True)])
    assert ours.shape == (len(a),)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert ref.min() < 0.9 and ref.max() == pytest.approx(1.0)  # the pairs span a real range


def test_ssim_windows_differ_and_gaussian_is_11_taps(pairs):
    a, b = (torch.from_numpy(p[:6]) for p in pairs)
    assert not torch.allclose(ssim(a, b, "gaussian"), ssim(a, b, "uniform7"), atol=1e-3)
    taps = gaussian_taps()
    assert taps.numel() == 11 and float(taps.sum()) == pytest.approx(1.0)


def test_ssim_multichannel_matches_scikit_image(pairs):
    a, b = pairs
    rgb_a = np.concatenate([a[:4], a[4:8] * 0.5, a[8:12]], axis=1)  # (4, 3, 64, 64)
    rgb_b = np.concatenate([b[:4], b[4:8], b[8:12] * 0.8], axis=1)
    ours = ssim(torch.from_numpy(rgb_a), torch.from_numpy(rgb_b)).numpy()
    ref = [structural_similarity(x, y, data_range=1.0, channel_axis=0, **SKIMAGE_ARGS["gaussian"])
           for x, y in zip(rgb_a, rgb_b, strict=True)]
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_psnr_matches_scikit_image_and_caps_identical_frames(pairs):
    a, b = pairs
    ours = psnr(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    differ = ~np.all(a == b, axis=(1, 2, 3))
    ref = np.array([peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(a[differ], b[differ], strict=True)])
    np.testing.assert_allclose(ours[differ], ref, atol=1e-4)
    assert np.all(ours[~differ] == pytest.approx(PSNR_CAP_DB))
    assert PSNR_CAP_DB == pytest.approx(100.0)


def test_psnr_is_per_channel_then_averaged():
    x = torch.zeros(1, 2, 8, 8)
    y = torch.zeros(1, 2, 8, 8)
    y[0, 0] = 0.1  # channel 0: MSE 0.01 -> 20 dB; channel 1 identical -> 100 dB cap
    assert psnr(x, y).item() == pytest.approx((20.0 + 100.0) / 2, abs=1e-4)


def test_batched_leading_dims_and_errors():
    x = torch.rand(2, 3, 4, 1, 16, 16)
    y = torch.rand(2, 3, 4, 1, 16, 16)
    assert ssim(x, y).shape == (2, 3, 4) and psnr(x, y).shape == (2, 3, 4)
    assert torch.allclose(ssim(x, y)[1, 2], ssim(x[1, 2], y[1, 2]))
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, y[:1])
    with pytest.raises(ValueError, match="unknown SSIM window"):
        ssim(x, y, "box")
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
