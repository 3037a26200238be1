"""Video and image decoding for the converters: PyAV (FFmpeg's libraries, in-process) and Pillow.

PyAV because its wheels bundle FFmpeg (no system ffmpeg, no subprocess pipes as with
imageio-ffmpeg), it decodes every container FFmpeg does (AVI, MP4, GIF, ...), can also write the
test fixtures, and raises typed errors; torchcodec would tie the converters to torch's version.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from svg_core.errors import SVGError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".gif", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
RESIZE_MODES = ("squash", "crop")
# A container may announce one frame more than it decodes (packed B-frames); more than that
# missing means the file was cut short.
_MISSING_FRAMES_OK = 1


def import_av() -> Any:
    try:
        import av
    except ImportError as e:
        raise RuntimeError("reading videos needs PyAV: pip install 'svg-video[train]' (or pip install av)") from e
    return av


def crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Center-crop an (H, W, 3) or (H, W) uint8 image to a square, then resize it (bicubic, antialiased)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(image[top:top + side, left:left + side])
    if side == size:
        return square
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BICUBIC))


def iter_video(path: str | os.PathLike, size: int | None = None, mode: str = "crop") -> Iterator[np.ndarray]:
    """Frames of a file's first video stream, shape = (H, W, 3) uint8 RGB, resized when size is given.

    mode "squash": FFmpeg's bicubic scaler straight to size x size, aspect ratio not kept (what
    `ffmpeg -s 64x64`, i.e. SVG's and SRVP's KTH preprocessing, does); "crop": center square crop,
    then Pillow's bicubic resize. Raises SVGError for unreadable or truncated files.
    """
    if mode not in RESIZE_MODES:
        raise SVGError(f"unknown resize mode {mode!r}: choose one of {', '.join(RESIZE_MODES)}")
    av = import_av()
    n_decoded, declared = 0, 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SVGError(f"{path} has no video stream: remove it from the folder")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            declared = int(stream.frames or 0) or _frames_from_duration(container, stream)
            for frame in container.decode(stream):
                if size is not None and mode == "squash":
                    yield frame.reformat(width=size, height=size, format="rgb24",
                                         interpolation="BICUBIC").to_ndarray()
                else:
                    rgb = frame.to_ndarray(format="rgb24")
                    yield rgb if size is None else crop_resize(rgb, size)
                n_decoded += 1
    except (av.error.FFmpegError, OSError) as e:
        raise SVGError(f"cannot decode {path} ({e}): the file is unreadable or truncated; "
                       f"download or re-encode it, or remove it") from e
    if n_decoded == 0:
        raise SVGError(f"{path} holds no decodable frame: download or re-encode it, or remove it")
    if declared and n_decoded < declared - _MISSING_FRAMES_OK:
        raise SVGError(f"{path} is truncated: its header announces {declared} frames but only {n_decoded} "
                       f"decode; download or re-encode it, or remove it")


def _frames_from_duration(container, stream) -> int:
    """Frames the header's duration implies, for containers that do not count them (MKV, WebM):
    their duration is written when the file is finished, so a truncated copy still announces it."""
    if not container.duration or not stream.average_rate:
        return 0
    # duration in microseconds; 5% slack for variable frame rates, far below what a truncation loses
    return int(0.95 * container.duration * float(stream.average_rate) / 1_000_000)


def read_video(path: str | os.PathLike, size: int | None = None, mode: str = "crop") -> np.ndarray:
    """All frames of a video, shape = (T, H, W, 3) uint8 RGB (see iter_video)."""
    return np.stack(list(iter_video(path, size, mode)))


def read_image_folder(folder: str | os.PathLike, size: int) -> np.ndarray:
    """The images of one folder (sorted by name) as frames, shape = (T, size, size, 3) uint8 RGB."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    frames = []
    for file in files:
        try:
            with Image.open(file) as img:
                frames.append(crop_resize(np.asarray(img.convert("RGB")), size))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise SVGError(f"cannot read image {file} ({e}): re-save it or remove it") from e
    if not frames:
        raise SVGError(f"{folder} holds no image ({', '.join(IMAGE_EXTENSIONS)})")
    return np.stack(frames)
