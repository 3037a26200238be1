"""Context frames from files, for the Predictor: numpy, imageio and Pillow only (no torch).

Sources (`load_context`):
- `.npz`: the array under key "frames", or the file's only array; `.npy`: its array. Layouts:
  (T, H, W), (T, C, H, W), (T, H, W, C) for one video; (B, T, C, H, W), (B, T, H, W, C) for a
  batch of B videos. The channel axis is the one of size 1, 3 or 4 (RGBA) next to H, W; a 4-D
  array is always ONE video (a batch of grayscale videos needs its channel axis: (B, T, 1, H, W)).
- `.gif`, `.mp4` (and other videos PyAV decodes: `.avi`, `.mov`, `.mkv`, `.webm`): one video.
- a directory of `.png` files: one video, frames in name order with numbers compared as numbers
  (frame_2.png before frame_10.png); a single `.png` / `.jpg` file: a one-frame video.
Values: uint8 0..255 or float in [0, 1] (the Predictor checks range, NaN and dtype).

`conform_frames` fits frames to a model only where nothing is lost or invented: an RGBA frame
whose alpha is fully opaque loses its alpha; an RGB frame whose channels agree (within 3/255: a
grayscale video after an RGB codec such as MP4's) becomes one channel. Frames are never resized,
and gray is never turned into RGB: such mismatches are errors that say the fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svg_runtime.errors import SVGRuntimeError

VIDEO_SUFFIXES = (".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_CHANNELS = (1, 3, 4)
GRAY_TOLERANCE = 3 / 255  # RGB channels this close count as gray (lossy codecs shift them slightly)


@dataclass
class Context:
    """Frames read from a file: (B, T, C, H, W), uint8 or float, as stored; `layout` says how the
    source's axes were read (e.g. "(T, H, W, C)")."""

    frames: np.ndarray
    source: str
    layout: str

    def describe(self) -> str:
        b, t, c, h, w = self.frames.shape
        return (f"{self.source}: {b} video(s) x {t} frame(s) of {c}x{h}x{w} (read as {self.layout}, "
                f"{self.frames.dtype})")


def load_context(path: str | os.PathLike) -> Context:
    """Read context frames from an .npz/.npy array, a GIF/MP4 video or a folder of PNGs."""
    path = Path(path)
    if path.is_dir():
        return Context(_read_png_folder(path), str(path), "PNG frames (T, H, W, C)")
    if not path.is_file():
        raise SVGRuntimeError(f"no context file at {path}: give an .npz, .npy, .gif, .mp4 or a folder of PNGs")
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        frames, layout = array_to_frames(_read_array(path), str(path))
        return Context(frames, str(path), layout)
    if suffix in VIDEO_SUFFIXES:
        return Context(_read_video(path)[None], str(path), "video (T, H, W, C)")
    if suffix in IMAGE_SUFFIXES:
        return Context(_read_images([path])[None], str(path), "one image (H, W, C)")
    raise SVGRuntimeError(f"cannot read context from {path.name}: use an .npz, .npy, .gif or .mp4 file, an image "
                          "or a folder of PNG frames")


def load_actions(path: str | os.PathLike, key: str = "actions") -> np.ndarray | None:
    """The actions stored beside frames in an .npz (its `actions` array), or in a .npy file; None
    when an .npz has none."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return _read_array(path)
    if path.suffix.lower() != ".npz":
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data[key] if key in data else None
    except (OSError, ValueError, EOFError) as e:
        raise SVGRuntimeError(f"cannot read {path} as a numpy archive ({e})") from e


def array_to_frames(arr: np.ndarray, where: str = "context") -> tuple[np.ndarray, str]:
    """An array in one of the documented layouts -> (B, T, C, H, W) and the layout it was read as."""
    if arr.ndim == 3:
        return arr[None, :, None], "(T, H, W)"
    if arr.ndim not in (4, 5):
        raise SVGRuntimeError(f"{where} has shape {arr.shape}: expected (T, H, W), (T, C, H, W), (T, H, W, C), "
                              "(B, T, C, H, W) or (B, T, H, W, C)")
    first, last = arr.shape[-3] in _CHANNELS, arr.shape[-1] in _CHANNELS
    if first == last:
        why = "both" if first else "neither"
        raise SVGRuntimeError(f"{where} has shape {arr.shape}: cannot tell its channel axis ({why} of axes -3 and "
                              "-1 has size 1, 3 or 4); store it as (T, C, H, W) or (B, T, C, H, W) with C in "
                              "1, 3, 4")
    lead = "(B, T, " if arr.ndim == 5 else "(T, "
    if last:
        arr = np.moveaxis(arr, -1, -3)
    if arr.ndim == 4:
        arr = arr[None]
    return arr, lead + ("H, W, C)" if last else "C, H, W)")


def conform_frames(frames: np.ndarray, frame_shape: tuple[int, int, int], where: str = "context") -> np.ndarray:
    """Fit frames (..., C, H, W) to a model's (C, H, W) where that is lossless, else raise."""
    c, h, w = frame_shape
    fh, fw = frames.shape[-2:]
    if (fh, fw) != (h, w):
        other = f" (or use a model trained at {fh}x{fw})" if fh == fw and fh in (64, 128) else ""
        raise SVGRuntimeError(f"{where} frames are {fh}x{fw} (H x W) but this model takes {h}x{w}: resize your "
                              f"frames to {h}x{w}{other}")
    have = frames.shape[-3]
    if have == 4 and c in (1, 3):
        alpha = frames[..., 3:, :, :]
        opaque = 255 if frames.dtype == np.uint8 else 1.0
        if not np.all(alpha == opaque):
            raise SVGRuntimeError(f"{where} frames have a transparent alpha channel: composite them onto a "
                                  f"background and save {'grayscale' if c == 1 else 'RGB'} frames")
        frames, have = frames[..., :3, :, :], 3
    if have == 3 and c == 1:
        return _rgb_to_gray(frames, where)
    if have != c:
        names = {1: "grayscale", 3: "RGB", 4: "RGBA"}
        raise SVGRuntimeError(f"{where} frames are {names[have]} ({have} channel(s)) but this model takes {c} "
                              f"channel(s): convert them to {names[c]} or use a {names[have]} model")
    return frames


def _rgb_to_gray(frames: np.ndarray, where: str) -> np.ndarray:
    """(..., 3, H, W) whose channels agree -> (..., 1, H, W); the mean of the channels, same dtype."""
    wide = frames.astype(np.float64)
    diff = np.abs(wide - wide[..., :1, :, :])
    spread = float(np.max(diff[np.isfinite(diff)], initial=0.0))
    scale = 255.0 if frames.dtype == np.uint8 else 1.0
    if spread > GRAY_TOLERANCE * scale:  # NaN passes: the Predictor names it
        raise SVGRuntimeError(f"{where} frames are RGB (their channels differ) but this model takes 1 channel: "
                              "convert them to grayscale (e.g. PIL's .convert('L')) or use an RGB model")
    gray = wide.mean(axis=-3, keepdims=True)
    if frames.dtype == np.uint8:
        return np.rint(gray).astype(np.uint8)
    return gray.astype(frames.dtype)


def _read_array(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:  # ValueError: pickled object arrays, bad headers
        raise SVGRuntimeError(f"cannot read {path} as a numpy array ({e}); save plain arrays with np.save or "
                              "np.savez") from e
    if isinstance(data, np.ndarray):
        return data
    with data:
        keys = list(data.keys())
        if "frames" in keys:
            return data["frames"]
        if len(keys) == 1:
            return data[keys[0]]
    raise SVGRuntimeError(f"{path} holds {len(keys)} arrays ({', '.join(keys) or 'none'}): store the context "
                          "under the key 'frames'")


def _read_video(path: Path) -> np.ndarray:
    """All frames of a GIF or video file, (T, H, W, C) uint8 with C in 1, 3, 4 -> (T, C, H, W)."""
    import imageio.v3 as iio

    plugin = None if path.suffix.lower() == ".gif" else "pyav"
    try:
        frames = np.asarray(iio.imread(path, index=None, plugin=plugin))
    except ImportError as e:
        raise SVGRuntimeError(f"reading {path.suffix} videos needs PyAV: `pip install av`, or convert "
                              f"{path.name} to a GIF or .npy") from e
    except Exception as e:  # imageio raises various types for unreadable files
        raise SVGRuntimeError(f"cannot read {path} as a video ({type(e).__name__}: {e})") from e
    if frames.ndim == 3:  # one grayscale frame or T grayscale frames: imageio returns (T, H, W)
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[0] < 1:
        raise SVGRuntimeError(f"{path} decoded to shape {frames.shape}, not a sequence of frames")
    return np.moveaxis(frames, -1, 1)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _read_png_folder(folder: Path) -> np.ndarray:
    """The folder's PNGs in natural name order -> (1, T, C, H, W) uint8."""
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png"), key=lambda p: _natural_key(p.name))
    if not files:
        raise SVGRuntimeError(f"{folder} holds no .png files: put the context frames there as PNGs "
                              "(frame_000.png, frame_001.png, ...)")
    return _read_images(files)[None]


def _read_images(files: list[Path]) -> np.ndarray:
    """8-bit images of one size -> (T, C, H, W) uint8 (C: 1 gray, 3 RGB, 4 RGBA)."""
    from PIL import Image

    frames = []
    for f in files:
        try:
            with Image.open(f) as img:
                if img.mode in ("I", "I;16", "I;16B", "F"):
                    raise SVGRuntimeError(f"{f} is a {img.mode} (16-bit or float) image: save 8-bit PNGs")
                if img.mode not in ("L", "RGB", "RGBA"):  # palette, bitmap, gray + alpha
                    alpha = "A" in img.mode or "transparency" in img.info
                    img = img.convert("RGBA" if alpha else "RGB")
                arr = np.asarray(img)
        except OSError as e:  # PIL.UnidentifiedImageError, truncated files
            raise SVGRuntimeError(f"cannot read {f} as an image ({e})") from e
        arr = arr[..., None] if arr.ndim == 2 else arr
        if frames and arr.shape != frames[0].shape:
            raise SVGRuntimeError(f"{f} is {arr.shape[0]}x{arr.shape[1]} (H x W) with {arr.shape[2]} channel(s) "
                                  f"but {files[0].name} is {frames[0].shape[0]}x{frames[0].shape[1]} with "
                                  f"{frames[0].shape[2]}: all frames must match")
        frames.append(arr)
    return np.moveaxis(np.stack(frames), -1, 1)
