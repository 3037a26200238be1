"""Video grids and files (GIF, MP4, PNG) with numpy, imageio and Pillow only (no torch)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svg_runtime.atomic import atomic_path
from svg_runtime.errors import SVGRuntimeError


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] (or uint8) -> uint8."""
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


GREEN = (40, 180, 60)
INK = (20, 20, 20)


def video_grid(videos: np.ndarray, pad: int = 2, marked: int = 0, present: np.ndarray | None = None,
               row_labels: Sequence[str] | None = None, col_labels: Sequence[str] | None = None) -> np.ndarray:
    """Tile videos (R, K, T, C, H, W) into one video (T, H', W', 3) uint8.

    Rows are videos, columns are variants (ground truth, samples...). The first `marked` time
    steps get a green border: the conditioning frames. present (R, K, T) bool: cells that are
    False stay empty (background), e.g. a ground-truth video shorter than the samples. With
    row_labels (R) / col_labels (K), every frame gets them in margins plus a caption "frame t / T",
    green and marked "conditioning" for the first `marked` frames.
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
            grid[t] = GREEN
        for r in range(n_rows):
            for k in range(n_cols):
                y, x = pad + r * (h + pad), pad + k * (w + pad)
                if present is None or present[r, k, t]:
                    grid[t, y:y + h, x:x + w] = frames[r, k, t].transpose(1, 2, 0)
                elif t < marked:
                    grid[t, y:y + h, x:x + w] = 255
    if row_labels is None and col_labels is None:
        return grid
    labels = GridLabels(rows=list(row_labels or []), cols=[(text, INK) for text in col_labels or []])
    captions = [(f"frame {t + 1} / {n_t}" + (": conditioning" if t < marked else ": predicted"),
                 GREEN if t < marked else INK) for t in range(n_t)]
    return np.stack([labels.draw(grid[t], (h, w), pad, caption) for t, caption in enumerate(captions)])


def time_grid(videos: np.ndarray, pad: int = 2, marked: int = 0,
              variant_labels: Sequence[str] | None = None) -> np.ndarray:
    """Videos (R, K, T, C, H, W) as one image: a row per (video, variant), time left to right.

    The first `marked` columns (the conditioning frames) get a green border. With variant_labels
    (K), rows are labelled "video r: variant" and columns by frame number (conditioning ones green).
    """
    n_rows, n_cols, n_t = videos.shape[:3]
    as_columns = videos.reshape(n_rows * n_cols, n_t, 1, *videos.shape[3:])  # one column per time step
    image = video_grid(as_columns, pad=pad)[0]
    w = videos.shape[-1]
    for k in range(marked):
        x = pad + k * (w + pad)
        image[:, x - pad:x, :] = image[:, x + w:x + w + pad, :] = GREEN
    if variant_labels is None:
        return image
    rows = [f"video {r + 1}: {variant_labels[k]}" for r in range(n_rows) for k in range(n_cols)]
    cols = [(str(t + 1), GREEN if t < marked else INK) for t in range(n_t)]
    caption = (f"frame number; green: the {marked} conditioning frames, then predicted" if marked
               else "frame number")
    return GridLabels(rows=rows, cols=cols).draw(image, videos.shape[-2:], pad, (caption, INK))


@dataclass
class GridLabels:
    """Row labels left of a grid, column labels (text, colour) above it, a caption line on top."""

    rows: list[str]
    cols: list[tuple[str, tuple[int, int, int]]]

    def draw(self, grid: np.ndarray, cell: tuple[int, int], pad: int,
             caption: tuple[str, tuple[int, int, int]] | None = None) -> np.ndarray:
        """The grid (H, W, 3) uint8 inside white margins holding the labels; cell = (h, w) of one tile."""
        from PIL import Image, ImageDraw

        font = _font()
        line = font.getbbox("Agy")[3] + 3  # from the drawing origin to below the descenders
        left = max((_text_size(font, t)[0] for t in self.rows), default=0) + (8 if self.rows else 0)
        top = line * ((1 if self.cols else 0) + (1 if caption else 0))
        canvas = Image.new("RGB", (grid.shape[1] + left, grid.shape[0] + top), "white")
        canvas.paste(Image.fromarray(grid), (left, top))
        draw = ImageDraw.Draw(canvas)
        h, w = cell
        if caption:
            draw.text((left + pad, 2), caption[0], fill=caption[1], font=font)
        for k, (text, colour) in enumerate(self.cols):
            x = left + pad + k * (w + pad) + (w - _text_size(font, text)[0]) // 2
            draw.text((x, top - line + 2), text, fill=colour, font=font)
        for r, text in enumerate(self.rows):
            y = top + pad + r * (h + pad) + (h - _text_size(font, text)[1]) // 2
            draw.text((4, y), text, fill=INK, font=font)
        return np.asarray(canvas)


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=11)  # Pillow >= 10.1 with FreeType: a scalable font
    except TypeError:
        return ImageFont.load_default()


def _text_size(font, text: str) -> tuple[int, int]:
    x0, y0, x1, y1 = font.getbbox(text)
    return x1 - x0, y1 - y0


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
