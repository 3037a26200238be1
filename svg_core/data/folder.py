"""Any videos: a folder of video files, frame folders or arrays, decoded once into a cached clip store.

`--dataset folder:PATH` trains on every video under PATH (any depth):
  - video files (.mp4 .avi .gif .mov .mkv .webm ...), decoded with PyAV;
  - folders of images (.png .jpg ...), one video per folder, frames in name order;
  - .npy / .npz arrays: (T, H, W), (T, H, W, C), (T, C, H, W), or several videos (N, T, ...),
    uint8 or floats in [0, 1]. An .npz may also hold "actions", shape (T-1, A) (or (N, T-1, A)): row t
    is the action taken between frames t and t+1. Then every array file must have them, with one
    A, and every item carries "actions" (T-1, A) too.
Frames are center-cropped to a square and resized (bicubic) to the model's size. A video is gray
when its R, G and B agree within GRAY_TOLERANCE levels in every pixel of every frame (whatever its
file format; lossy codecs add chroma noise), RGB otherwise; all videos must agree. Gray videos
keep the mean of R, G, B. The decoded clips are cached in $SVG_CACHE_DIR (default ~/.cache/svg-video)/folders,
under a hash of the file list, sizes, mtimes and the frame size: training never decodes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svg_core.data.clips import INDEX_NAME, ClipWriter, load_index
from svg_core.data.videos import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    crop_resize,
    read_image_folder,
    read_video,
)
from svg_core.errors import SVGError

log = logging.getLogger("svg")

ARRAY_EXTENSIONS = (".npy", ".npz")
_NPZ_KEYS = ("frames", "videos", "sequences", "arr_0")
_CACHE_VERSION = 1
# MPEG-4 part 2 turns gray content into R, G, B up to 3 levels apart; real colour differs far more.
GRAY_TOLERANCE = 8


@dataclass(frozen=True)
class Source:
    """One input of a folder: a video file, a folder of frames or an array file."""

    path: Path
    kind: str  # "video" | "frames" | "array"


def find_sources(root: str | os.PathLike) -> list[Source]:
    """Every video, frame folder and array under root, in path order; hidden entries are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise SVGError(f"folder dataset {root} is not a directory: pass --dataset folder:PATH with a folder of videos")
    sources = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = sorted(f for f in filenames if not f.startswith("."))
        if any(Path(f).suffix.lower() in IMAGE_EXTENSIONS for f in names):
            sources.append(Source(Path(dirpath), "frames"))
        for name in names:
            suffix = Path(name).suffix.lower()
            if suffix in VIDEO_EXTENSIONS:
                sources.append(Source(Path(dirpath, name), "video"))
            elif suffix in ARRAY_EXTENSIONS:
                sources.append(Source(Path(dirpath, name), "array"))
    if not sources:
        raise SVGError(f"no video under {root}: put video files ({' '.join(VIDEO_EXTENSIONS)}), folders of "
                       f"images ({' '.join(IMAGE_EXTENSIONS)}) or .npy/.npz arrays there")
    return sources


def cache_root() -> Path:
    """Where converted folders are cached: $SVG_CACHE_DIR/folders or ~/.cache/svg-video/folders."""
    base = os.environ.get("SVG_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "svg-video") / "folders"


def _fingerprint(root: Path, sources: list[Source], image_size: int, action_dim: int = 0) -> str:
    files = []
    for src in sources:
        paths = [src.path] if src.kind != "frames" else sorted(
            p for p in src.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        for p in paths:
            st = p.stat()
            files.append([str(p.relative_to(root)), st.st_size, st.st_mtime_ns])
    # Folders without actions keep the key they had before actions existed (their caches stay valid).
    text = json.dumps([_CACHE_VERSION, str(root.resolve()), image_size, files]
                      + ([{"action_dim": action_dim}] if action_dim else []))
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_folder(root: str | os.PathLike, image_size: int, *, progress: bool = False) -> Path:
    """The clip store of a folder at one frame size: converted on first use, then reused from the cache."""
    root = Path(root)
    sources = find_sources(root)
    action_dim = scan_action_dim(sources)
    key = _fingerprint(root, sources, image_size, action_dim)
    store = cache_root() / f"{root.resolve().name or 'root'}-{image_size}-{key[:16]}"
    if (store / INDEX_NAME).is_file():
        return store
    log.info("decoding %d videos of %s into %s (once)", len(sources), root, store)
    try:
        return _convert(root, sources, store, image_size, key, progress, action_dim)
    except (OSError, SVGError):
        if (store / INDEX_NAME).is_file():  # another process converted the same folder meanwhile
            return store
        raise


def _convert(root: Path, sources: list[Source], store: Path, image_size: int, key: str, progress: bool,
             action_dim: int = 0) -> Path:
    from svg_runtime.progress import progress_bar as tqdm  # plain lines, not \r floods, in logs

    gray, rgb = [], []
    extras = {"actions": action_dim} if action_dim else None
    with ClipWriter(store, dataset="folder", image_size=image_size, channels=3, extras=extras) as writer:
        for src in tqdm(sources, desc="decode", unit="file", disable=not progress):
            for name, frames, actions in _decode(src, root, image_size):  # frames (T, S, S, 3) uint8
                if is_gray(frames):
                    gray.append(name)
                    frames = np.repeat(np.round(frames.mean(axis=-1, keepdims=True)).astype(np.uint8), 3, axis=-1)
                else:
                    rgb.append(name)
                writer.add(frames.transpose(0, 3, 1, 2), {"name": name, "split": "train"},
                           {"actions": _pad_transitions(actions)} if action_dim else None)
        if gray and rgb:
            raise SVGError(f"{root} mixes gray and RGB videos, and a model takes one kind: gray: "
                           f"{_listing(gray)}; RGB: {_listing(rgb)}. Make them all RGB or all gray "
                           f"(e.g. ffmpeg -i in.mp4 -vf format=gray out.mp4), or move one kind elsewhere")
        if gray:
            writer.reduce_to_gray()
        meta = {"transitions": ["actions"], "action_names": default_action_names(action_dim)} if action_dim else {}
        return writer.commit(source=str(root.resolve()), key=key, **meta)


def is_gray(frames: np.ndarray) -> bool:
    """Whether (T, H, W, 3) uint8 frames have equal R, G, B up to lossy codecs' chroma noise."""
    channels = frames.astype(np.int16)
    return bool(np.abs(channels[..., 0] - channels[..., 1]).max() <= GRAY_TOLERANCE
                and np.abs(channels[..., 1] - channels[..., 2]).max() <= GRAY_TOLERANCE)


def _listing(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _decode(src: Source, root: Path, size: int) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, frames (T, S, S, 3) uint8, actions (T-1, A) float32 or None) of each video of a source."""
    name = str(src.path.relative_to(root)) if src.path != root else "."
    if src.kind == "video":
        yield name, read_video(src.path, size, "crop"), None
    elif src.kind == "frames":
        yield name, read_image_folder(src.path, size), None
    else:
        videos = load_array_videos(src.path)  # (N, T, H, W, C)
        actions = load_array_actions(src.path, videos.shape[:2])  # (N, T-1, A) or None
        for i, video in enumerate(videos):
            label = name if len(videos) == 1 else f"{name}[{i}]"
            frames = np.stack([crop_resize(frame, size) for frame in _to_rgb_uint8(video, src.path)])
            yield label, frames, None if actions is None else actions[i]


def default_action_names(action_dim: int) -> list[str]:
    return [f"action_{i}" for i in range(action_dim)]


def _pad_transitions(actions: np.ndarray) -> np.ndarray:
    """(T-1, A) actions -> (T, A) rows of a clip store, the last row zero padding."""
    return np.concatenate([actions, np.zeros((1, actions.shape[1]), np.float32)])


def _actions_shape(path: Path) -> tuple[int, ...] | None:
    """The shape of the "actions" array of an .npz file, None when it has none (or is no .npz)."""
    if path.suffix.lower() != ".npz":
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return tuple(data["actions"].shape) if "actions" in data.files else None
    except (OSError, ValueError, EOFError) as e:
        raise SVGError(f"cannot read array file {path} ({e}): save it with numpy.savez (no pickled objects)") from e


def scan_action_dim(sources: list[Source]) -> int:
    """The action size A shared by every array file of a folder, 0 when none has actions.

    SVGError naming the file when only some sources have actions or their sizes differ.
    """
    shapes = {src.path: _actions_shape(src.path) if src.kind == "array" else None for src in sources}
    with_actions = {p: s for p, s in shapes.items() if s is not None}
    if not with_actions:
        return 0
    first, first_shape = next(iter(with_actions.items()))
    without = [p for p, s in shapes.items() if s is None]
    if without:
        raise SVGError(f"{without[0]} has no actions but {first} has: give every video an \"actions\" array "
                       f"(.npz with frames and actions), or move the videos without actions elsewhere")
    for path, shape in with_actions.items():
        if len(shape) not in (2, 3) or shape[-1] < 1:
            raise SVGError(f"{path}: actions of shape {shape}: store them as (T-1, A) (or (N, T-1, A))")
        if shape[-1] != first_shape[-1]:
            raise SVGError(f"{path} has actions of dimension {shape[-1]} but {first} has {first_shape[-1]}: "
                           f"every video needs the same action size")
    return int(first_shape[-1])


def load_array_actions(path: Path, videos_shape: tuple[int, int]) -> np.ndarray | None:
    """The actions of an .npz file as (N, T-1, A) float32, checked against its videos (N, T); None if none."""
    if _actions_shape(path) is None:
        return None
    with np.load(path, allow_pickle=False) as data:
        actions = np.asarray(data["actions"], dtype=np.float32)
    n_videos, n_frames = videos_shape
    if actions.ndim == 2:
        actions = actions[None]
    if actions.shape[:2] != (n_videos, n_frames - 1):
        raise SVGError(f"{path}: {actions.shape[-2]} actions for {n_frames} frames: store one action per step "
                       f"between frames, (T-1, A) = ({n_frames - 1}, A)")
    if not np.isfinite(actions).all():
        raise SVGError(f"{path}: actions hold NaN or infinite values: fix or drop those videos")
    return actions


def load_array_videos(path: Path) -> np.ndarray:
    """The videos of an .npy/.npz file, shape = (N, T, H, W, C), as stored (possibly memory-mapped)."""
    try:
        data = np.load(path, allow_pickle=False, mmap_mode="r" if path.suffix.lower() == ".npy" else None)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                keys = data.files if len(data.files) == 1 else [k for k in _NPZ_KEYS if k in data.files]
                if not keys:
                    raise SVGError(f"{path} holds arrays {data.files}: name the video array one of {_NPZ_KEYS}")
                data = data[keys[0]]
    except (OSError, ValueError, EOFError) as e:
        raise SVGError(f"cannot read array file {path} ({e}): save it with numpy.save (no pickled objects)") from e
    arr = np.asarray(data)
    if arr.ndim == 3:
        arr = arr[None, ..., None]  # (T, H, W) gray
    elif arr.ndim == 4:
        arr = arr[None] if arr.shape[-1] in (1, 3, 4) else (
            arr.transpose(0, 2, 3, 1)[None] if arr.shape[1] in (1, 3, 4) else arr[..., None])
    elif arr.ndim == 5:
        if arr.shape[-1] not in (1, 3, 4):
            if arr.shape[2] not in (1, 3, 4):
                raise SVGError(f"{path}: cannot tell the channel axis of shape {arr.shape}")
            arr = arr.transpose(0, 1, 3, 4, 2)
    else:
        raise SVGError(f"{path}: array of shape {arr.shape} is not a video: use (T, H, W), (T, H, W, C), "
                       f"(T, C, H, W) or (N, T, ...)")
    if arr.shape[-1] not in (1, 3, 4) or min(arr.shape[:4]) < 1:
        raise SVGError(f"{path}: cannot read {arr.shape} as videos (N, T, H, W, C) with 1, 3 or 4 channels")
    return arr


def _to_rgb_uint8(video: np.ndarray, path: Path) -> np.ndarray:
    """(T, H, W, C) frames of any accepted dtype -> (T, H, W, 3) uint8 (gray repeated, alpha dropped)."""
    if video.dtype == np.uint8:
        out = np.asarray(video)
    elif video.dtype == np.bool_:
        out = np.asarray(video).astype(np.uint8) * 255
    elif np.issubdtype(video.dtype, np.floating):
        lo, hi = float(video.min()), float(video.max())
        if lo < 0 or hi > 1:
            raise SVGError(f"{path}: float frames must lie in [0, 1], found [{lo:.3g}, {hi:.3g}]: rescale them")
        out = np.round(np.asarray(video, dtype=np.float32) * 255).astype(np.uint8)
    elif np.issubdtype(video.dtype, np.integer) and video.min() >= 0 and video.max() <= 255:
        out = np.asarray(video).astype(np.uint8)
    else:
        raise SVGError(f"{path}: frames of dtype {video.dtype} must be uint8 (0-255) or floats in [0, 1]")
    channels = out.shape[-1]
    return np.repeat(out, 3, axis=-1) if channels == 1 else out[..., :3]


def folder_channels(root: str | os.PathLike, image_size: int) -> int:
    """How many channels the folder's videos have (1 or 3); converts the folder if not cached yet."""
    return int(load_index(prepare_folder(root, image_size))["channels"])
