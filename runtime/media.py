"""Video grids and files (GIF, MP4, PNG) with numpy, imageio and Pillow only (no torch)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from svg_runtime.atomic import atomic_path
from svg_runtime.errors import SVGRuntimeError


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] (or uint8) -> uint8."""
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def video_grid(videos: np.ndarray, pad: int = 2, marked: int = 0, present: np.ndarray | None = None) -> np.ndarray:
    """Tile videos (R, K, T, C, H, W) into one video (T, R*(H+pad)+pad, K*(W+pad)+pad, 3) uint8.

    Rows are videos, columns are variants (ground truth, samples...). The first `marked` time
    steps get a green border: the conditioning frames. present (R, K, T) bool: cells that are
    False stay empty (background), e.g. a ground-truth video shorter than the samples.
    """
    n_rows, n_cols, n_t, c, h, w = videos.shape
    if present is not None and present.shape != (n_rows, n_cols, n_t):
        raise ValueError(f"present must have shape {(n_rows, n_cols, n_t)}, got {present.shape}")
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
                if present is None or present[r, k, t]:
                    grid[t, y:y + h, x:x + w] = frames[r, k, t].transpose(1, 2, 0)
                elif t < marked:
                    grid[t, y:y + h, x:x + w] = 255
    return grid


def time_grid(videos: np.ndarray, pad: int = 2, marked: int = 0) -> np.ndarray:
    """Videos (R, K, T, C, H, W) as one image: a row per (video, variant), time left to right.

    The first `marked` columns (the conditioning frames) get a green border.
    """
    n_rows, n_cols, n_t = videos.shape[:3]
    as_columns = videos.reshape(n_rows * n_cols, n_t, 1, *videos.shape[3:])  # one column per time step
    image = video_grid(as_columns, pad=pad)[0]
    if marked:
        w = videos.shape[-1]
        for k in range(marked):
            x = pad + k * (w + pad)
            image[:, x - pad:x, :] = image[:, x + w:x + w + pad, :] = (40, 180, 60)
    return image


def _atomic(path: Path, write) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def save_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 4.0) -> Path:
    """Write (T, H, W, 3) uint8 frames as a looping GIF or an MP4 (by suffix), atomically."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() == ".gif":
        return _atomic(path, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0))
    if path.suffix.lower() == ".mp4":  # H.264 in yuv420p needs even sizes: repeat the last row/column
        h, w = frames.shape[1:3]
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        try:
            return _atomic(path, lambda tmp: iio.imwrite(tmp, frames, extension=".mp4", plugin="pyav",
                                                         codec="libx264", fps=fps))
        except ImportError as e:
            raise SVGRuntimeError(f"writing {path.name} needs PyAV: `pip install av`, or write a .gif") from e
    raise ValueError(f"unsupported video file {path.name}: use .gif or .mp4")


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 image (PNG), atomically."""
    from PIL import Image

    path = Path(path)
    return _atomic(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))
