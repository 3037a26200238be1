"""BAIR robot pushing (softmotion30_44k): TFRecords -> clip store, without TensorFlow.

Each record is one video of 30 steps; step i holds "{i}/image_aux1/encoded" (64x64x3 raw RGB
bytes, the camera SVG and SRVP use), "{i}/action" (4 floats) and "{i}/endeffector_pos" (3 floats).
The store keeps the frames and, per frame, "actions" and "endeffector_pos" for action-conditioned
models. Splits: the dataset's own train/ and test/ folders (the 256 test videos).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from svg_core.data.clips import ClipWriter, check_output
from svg_core.data.tfrecord import parse_example, read_records
from svg_core.errors import SVGError

log = logging.getLogger("svg")

IMAGE_KEY, ACTION_KEY, POSITION_KEY = "image_aux1/encoded", "action", "endeffector_pos"
SIZE = 64
_STEP_KEY = re.compile(r"^(\d+)/(image_aux1/encoded|action|endeffector_pos)$")


def find_bair_files(root: str | os.PathLike) -> dict[str, list[Path]]:
    """{"train": [...], "test": [...]} TFRecord files under root or root/softmotion30_44k, in natural order."""
    root = Path(root)
    base = root / "softmotion30_44k" if (root / "softmotion30_44k").is_dir() else root
    files = {split: sorted((base / split).glob("*.tfrecord*"), key=_natural_key) for split in ("train", "test")}
    if not any(files.values()):
        raise SVGError(f"no TFRecord files in {base}/train or {base}/test: pass the folder that holds "
                       f"softmotion30_44k (from bair_robot_pushing_dataset_v0.tar)")
    for split, found in files.items():
        if not found:
            log.warning("BAIR: no %s TFRecords under %s", split, base)
    return files


def _natural_key(path: Path) -> list[int | str]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def decode_bair_record(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames (T, 3, 64, 64) uint8, actions (T, 4) float32, endeffector_pos (T, 3) float32) of one record."""
    try:
        features = parse_example(data, lambda key: _STEP_KEY.match(key) is not None)
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise SVGError(f"{where} is not a tf.train.Example ({e}): download the file again") from e
    n_steps = 0
    while f"{n_steps}/{IMAGE_KEY}" in features:
        n_steps += 1
    if n_steps == 0:
        raise SVGError(f"{where} has no '0/{IMAGE_KEY}' feature: not a BAIR softmotion record "
                       f"(its step features: {sorted(features)[:6]})")
    frames = np.empty((n_steps, 3, SIZE, SIZE), dtype=np.uint8)
    actions = np.empty((n_steps, 4), dtype=np.float32)
    positions = np.empty((n_steps, 3), dtype=np.float32)
    for i in range(n_steps):
        image = features[f"{i}/{IMAGE_KEY}"]
        if not isinstance(image, list) or len(image) != 1 or len(image[0]) != SIZE * SIZE * 3:
            raise SVGError(f"{where}: '{i}/{IMAGE_KEY}' is not one {SIZE}x{SIZE}x3 raw image "
                           f"({len(image[0]) if isinstance(image, list) and image else 0} bytes)")
        frames[i] = np.frombuffer(image[0], dtype=np.uint8).reshape(SIZE, SIZE, 3).transpose(2, 0, 1)
        for key, out, dim in ((ACTION_KEY, actions, 4), (POSITION_KEY, positions, 3)):
            value = features.get(f"{i}/{key}")
            if not isinstance(value, np.ndarray) or value.shape != (dim,) or value.dtype != np.float32:
                raise SVGError(f"{where}: '{i}/{key}' should be {dim} floats, got {value!r:.80}")
            out[i] = value
    return frames, actions, positions


def convert_bair(root: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False,
                 progress: bool = False) -> Path:
    """Convert softmotion30_44k/{train,test}/*.tfrecords under root into an RGB clip store at out."""
    from svg_runtime.progress import progress_bar as tqdm  # plain lines, not \r floods, in logs

    check_output(out, overwrite)
    files = find_bair_files(root)
    base = files["train"][0].parent.parent if files["train"] else files["test"][0].parent.parent
    with ClipWriter(out, dataset="bair", image_size=SIZE, channels=3, overwrite=overwrite,
                    extras={"actions": 4, "endeffector_pos": 3}) as writer:
        bar = tqdm(total=sum(len(f) for f in files.values()), desc="bair", unit="file", disable=not progress)
        for split, paths in files.items():
            for path in paths:
                for k, record in enumerate(read_records(path)):
                    frames, actions, positions = decode_bair_record(record, f"{path} record {k}")
                    writer.add(frames, {"name": f"{split}/{path.stem}/{k:03d}", "split": split,
                                        "file": str(path.relative_to(base)), "record": k},
                               {"actions": actions, "endeffector_pos": positions})
                bar.update(1)
        bar.close()
        return writer.commit(source="softmotion30_44k", camera="image_aux1")
