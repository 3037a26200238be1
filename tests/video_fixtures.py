"""Writers of small real-format fixtures (AVI/MP4/GIF via PyAV and Pillow, TFRecords via `tfrecord`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def moving_frames(n: int, height: int = 120, width: int = 160, seed: int = 0, gray: bool = True) -> np.ndarray:
    """(n, H, W, 3) uint8: a textured background and a bright block moving right, one column step per frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 90, size=(-(-height // 8), -(-width // 8), 3 if not gray else 1), dtype=np.uint8)
    base = np.repeat(np.repeat(base, 8, axis=0), 8, axis=1)[:height, :width]
    frames = np.broadcast_to(base, (n, height, width, base.shape[-1])).copy()
    for t in range(n):
        x = (4 * t) % (width - 24)
        frames[t, height // 3: height // 3 + 24, x:x + 24] = 230
    return np.repeat(frames, 3, axis=-1) if gray else frames


def write_video(path: Path, frames: np.ndarray, codec: str = "mpeg4", fps: int = 25) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames with PyAV (yuv420p, high quality)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if codec == "mpeg4":
            stream.options = {"qscale": "2"}  # KTH's files are MPEG-4 part 2 (DivX) in AVI
        else:
            stream.options = {"crf": "10"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_gif(path: Path, frames: np.ndarray) -> Path:
    """A GIF as users have them (Pillow, palette)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    return path


def write_png_folder(folder: Path, frames: np.ndarray, gray: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame[..., 0] if gray else frame).save(folder / f"frame_{t:04d}.png")
    return folder


def bair_record(rng: np.random.Generator, n_steps: int = 30) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """A softmotion30_44k-style Example for `tfrecord`'s writer, and its frames, actions, positions."""
    frames = rng.integers(0, 256, size=(n_steps, 64, 64, 3), dtype=np.uint8)
    actions = rng.normal(size=(n_steps, 4)).astype(np.float32)
    positions = rng.normal(size=(n_steps, 3)).astype(np.float32)
    datum = {}
    for i in range(n_steps):
        datum[f"{i}/image_aux1/encoded"] = (frames[i].tobytes(), "byte")
        datum[f"{i}/image_main/encoded"] = (frames[i][::-1].tobytes(), "byte")
        datum[f"{i}/action"] = (actions[i].tolist(), "float")
        datum[f"{i}/endeffector_pos"] = (positions[i].tolist(), "float")
    return datum, frames, actions, positions


def write_bair_file(path: Path, records: list[dict]) -> Path:
    from tfrecord.writer import TFRecordWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = TFRecordWriter(str(path))
    for datum in records:
        writer.write(datum)
    writer.close()
    return path
