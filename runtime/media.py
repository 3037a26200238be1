"""Video grids and files (GIF, MP4, PNG) with numpy and imageio only (no torch)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] (or uint8) -> uint8."""
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def video_grid(videos: np.ndarray, pad: int = 2, marked: int = 0) -> np.ndarray:
    """Tile videos (R, K, T, C, H, W) into one video (T, R*(H+pad)+pad, K*(W+pad)+pad, 3) uint8.

    Rows are videos, columns are variants (ground truth, samples...). The first `marked` time
    steps get a green border: the conditioning frames.
    """
    n_rows, n_cols, n_t, c, h, w = videos.shape
    frames = to_uint8(videos)
    if c == 1:
        frames = np.repeat(frames, 3, axis=3)
    grid = np.full((n_t, n_rows * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8)
    for t in range(n_t):
        if t < marked:
            grid[t] = (40, 180, 60)
        for r in range(n_rows):
            for k in range(n_cols):
                y, x = pad + r * (h + pad), pad + k * (w + pad)
                grid[t, y:y + h, x:x + w] = frames[r, k, t].transpose(1, 2, 0)
    return grid


def time_strip(video_grid_frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) -> one image with the time steps side by side (H, T*W, 3)."""
    return np.concatenate(list(video_grid_frames), axis=1)


def _atomic(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 4.0) -> Path:
    """Write (T, H, W, 3) uint8 frames as a looping GIF or an MP4 (by suffix), atomically."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() == ".gif":
        return _atomic(path, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0))
    if path.suffix.lower() == ".mp4":
        return _atomic(path, lambda tmp: iio.imwrite(tmp, frames, extension=".mp4", fps=fps))
    raise ValueError(f"unsupported video file {path.name}: use .gif or .mp4")


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 image (PNG), atomically."""
    from PIL import Image

    path = Path(path)
    return _atomic(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))
