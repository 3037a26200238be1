"""KTH human actions: convert the original AVI files into a clip store, build the fixed test set.

Preprocessing follows SVG's `convert_kth.lua` and SRVP's `preprocessing/kth/convert.py`, which run
`ffmpeg -i personXX_action_dY_uncomp.avi -r 25 -s 64x64 image-%03d.png` and keep the first
channel: every 160x120 frame is squeezed to a square with FFmpeg's bicubic scaler (no crop, the
aspect ratio changes). `resize="squash"` (default) does exactly that through the same library, so
numbers compare with published ones; `resize="crop"` center-crops 120x120 first instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svg_core.data.clips import ClipWriter, check_output, load_index, open_frames
from svg_core.data.videos import RESIZE_MODES, read_video
from svg_core.errors import SVGError
from svg_runtime.atomic import save_npz

log = logging.getLogger("svg")

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
# person ranges (train, test): SVG/SRVP train on persons 1-20; SAVP/OpenSTL on 1-16.
SPLITS = {"svg": ((1, 20), (21, 25)), "savp": ((1, 16), (17, 25))}
_FILE = re.compile(r"^person(\d\d)_([a-z]+)_d([1-4])(?:_uncomp)?\.avi$", re.IGNORECASE)


@dataclass(frozen=True)
class KTHVideo:
    """One original KTH file: person 1-25, one of ACTIONS, scenario (d1-d4) 1-4."""

    path: Path
    person: int
    action: str
    scenario: int

    @property
    def name(self) -> str:
        return f"person{self.person:02d}_{self.action}_d{self.scenario}"


def find_kth_videos(raw_dir: str | os.PathLike) -> list[KTHVideo]:
    """Every personXX_action_dY[_uncomp].avi under raw_dir (any depth), sorted by person, action, scenario."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise SVGError(f"KTH directory {raw_dir} does not exist: pass the folder holding the KTH .avi files")
    found: dict[str, KTHVideo] = {}
    for path in sorted(raw_dir.rglob("*.avi")):
        match = _FILE.match(path.name)
        if match is None or match.group(2).lower() not in ACTIONS or not 1 <= int(match.group(1)) <= 25:
            log.warning("skipping %s: not named personXX_<action>_dY_uncomp.avi", path)
            continue
        video = KTHVideo(path, int(match.group(1)), match.group(2).lower(), int(match.group(3)))
        if video.name in found:
            raise SVGError(f"{video.name} found twice ({found[video.name].path} and {path}): keep one")
        found[video.name] = video
    if not found:
        raise SVGError(f"no KTH video (personXX_<action>_dY_uncomp.avi) under {raw_dir}")
    return sorted(found.values(), key=lambda v: (v.person, ACTIONS.index(v.action), v.scenario))


def split_persons(split: str) -> tuple[list[int], list[int]]:
    """(train persons, test persons) of a named split: 'svg' (1-20 / 21-25) or 'savp' (1-16 / 17-25)."""
    if split not in SPLITS:
        raise SVGError(f"unknown KTH split {split!r}: choose svg (persons 1-20 train, 21-25 test, SVG/SRVP) "
                       f"or savp (1-16 / 17-25, SAVP/OpenSTL)")
    (a, b), (c, d) = SPLITS[split]
    return list(range(a, b + 1)), list(range(c, d + 1))


def convert_kth(raw_dir: str | os.PathLike, out: str | os.PathLike, *, size: int = 64, split: str = "svg",
                resize: str = "squash", overwrite: bool = False, progress: bool = False) -> Path:
    """Convert the KTH AVI files under raw_dir into a gray clip store at out; returns out."""
    from svg_runtime.progress import progress_bar as tqdm  # plain lines, not \r floods, in logs

    if size not in (64, 128):
        raise SVGError(f"KTH frame size must be 64 or 128, got {size}")
    if resize not in RESIZE_MODES:
        raise SVGError(f"unknown --resize {resize!r}: choose squash (SVG/SRVP) or crop")
    check_output(out, overwrite)
    train_persons, test_persons = split_persons(split)
    videos = find_kth_videos(raw_dir)
    with ClipWriter(out, dataset="kth", image_size=size, channels=1, overwrite=overwrite) as writer:
        for video in tqdm(videos, desc="kth", unit="video", disable=not progress):
            rgb = read_video(video.path, size, resize)  # (T, S, S, 3): gray content, keep one channel
            writer.add(rgb[:, None, :, :, 0], {
                "name": video.name, "person": video.person, "action": video.action, "scenario": video.scenario,
                "split": "train" if video.person in train_persons else "test",
                "source": str(video.path.relative_to(raw_dir)),
            })
        return writer.commit(split={"name": split, "train_persons": train_persons, "test_persons": test_persons},
                             resize=resize, fps=25)


def make_kth_test_set(store: str | os.PathLike, *, count: int = 1000, length: int = 40,
                      seed: int = 42) -> dict[str, np.ndarray]:
    """The fixed test set: `count` clips of `length` frames from the store's test persons.

    Draws as SRVP's make_test_set.py does (np.random.seed(seed), then per clip: action, person,
    scenario, start), so with the same seed and frame counts it picks the same clips. A draw that
    hits a missing or too-short video is drawn again (never happens on the full KTH).
    Returns "frames" shape = (count, length, 1, H, W) uint8 and "persons", "actions", "scenarios",
    "starts", "names", "seed", "config".
    """
    index = load_index(store)
    if index["dataset"] != "kth":
        raise SVGError(f"{store} holds {index['dataset']!r}, not KTH: pass a directory made by `svg data kth`")
    if count < 1 or length < 1:
        raise SVGError(f"--count and --length must be >= 1, got {count} and {length}")
    persons = index["split"]["test_persons"]
    usable = {(v["action"], v["person"], v["scenario"]): v for v in index["videos"]
              if v["split"] == "test" and v["length"] >= length}
    if not usable:
        raise SVGError(f"no test video (persons {persons[0]}-{persons[-1]}) in {store} has {length} frames: "
                       f"lower --length")
    rs = np.random.RandomState(seed)  # the legacy generator: the same stream as SRVP's np.random.seed
    frames, chosen = open_frames(store), []
    for _ in range(count):
        video = None
        while video is None:
            key = (ACTIONS[rs.randint(len(ACTIONS))], int(rs.randint(persons[0], persons[-1] + 1)),
                   int(rs.randint(1, 5)))
            video = usable.get(key)
        chosen.append((video, int(rs.randint(video["length"] - length + 1))))
    clips = np.stack([frames[v["start"] + t0:v["start"] + t0 + length] for v, t0 in chosen])
    config: dict[str, Any] = {"dataset": "kth", "count": count, "length": length, "seed": seed,
                              "image_size": index["image_size"], "split": index["split"]["name"],
                              "resize": index.get("resize")}
    return {"frames": clips, "persons": np.array([v["person"] for v, _ in chosen], dtype=np.int64),
            "actions": np.array([v["action"] for v, _ in chosen]),
            "scenarios": np.array([v["scenario"] for v, _ in chosen], dtype=np.int64),
            "starts": np.array([t0 for _, t0 in chosen], dtype=np.int64),
            "names": np.array([v["name"] for v, _ in chosen]),
            "seed": np.asarray(seed, dtype=np.int64), "config": np.asarray(json.dumps(config, sort_keys=True))}


def write_kth_test_set(store: str | os.PathLike, out: str | os.PathLike, **kwargs: Any) -> Path:
    """make_kth_test_set saved atomically as an .npz (no pickle needed to read it)."""
    return save_npz(out, make_kth_test_set(store, **kwargs))
