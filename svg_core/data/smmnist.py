"""Stochastic Moving MNIST (Denton & Fergus 2018, sec. 4.2), generated on the fly with numpy.

Follows the authors' generator (edenton/svg, data/moving_mnist.py):

- each digit is resized to `digit_size` pixels (32 for 64x64 frames; by default half the frame,
  so 64 for 128x128 frames, which keeps the paper's digit-to-frame ratio);
- its top-left corner (x, y) starts uniform on the valid positions `0 .. image_size - digit_size - 1`
  (the authors' range: `randint(image_size - digit_size)`) and its integer velocity (dx, dy) is
  drawn from the start distribution over `[-max_speed, max_speed]^2`;
- at each frame t, a digit that has left the valid range is clamped to the wall and bounces: in
  stochastic mode it gets a fresh velocity whose wall-normal component points away from the wall
  (1 .. max_speed) and whose other component is free; in deterministic mode the normal component
  is negated. The frame is drawn at the clamped position, then the digit moves by its velocity.
- digits are added and clipped at 255 (the authors add and clip at 1).

Velocity distributions over the integer grid `[-m, m]^2` (m = max_speed):

- "uniform": every (dx, dy) equally likely at the start, (0, 0) included (the authors' randint); at
  a bounce, uniform over the valid velocities (the authors' `dy = randint(1, 5); dx = randint(-4, 5)`
  for the top wall). One deliberate difference: at a corner (two walls in one frame) both normal
  components must point away; the authors' code lets the second draw overwrite the first.
- "nonuniform" (supplementary material, Fig. 3): p(dx, dy) proportional to |dx| + |dy|, so greater
  speeds are more likely and a digit never stands still; at a bounce invalid directions get
  probability zero and the rest are renormalised.

Randomness is consumed only at the start of a sequence and at bounces (one `rng.random()` call per
digit per bounce), so trajectories are deterministic between wall hits. Sequence i of a stream
uses `np.random.default_rng([seed, i])`: any index range is reproducible in any order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import weakref
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from svg_core.errors import SVGError
from svg_runtime.atomic import save_npz

VELOCITY_KINDS = ("uniform", "nonuniform")
CHANNEL_CHOICES = (1, 3)


@dataclass(frozen=True)
class SMMNISTConfig:
    """Options of the SM-MNIST generator; `digit_size=None` means `image_size // 2`."""

    image_size: int = 64
    num_digits: int = 2
    seq_len: int = 25
    digit_size: int | None = None
    max_speed: int = 4
    deterministic: bool = False
    velocity: str = "uniform"  # uniform | nonuniform
    channels: int = 1

    def __post_init__(self) -> None:
        if self.digit_size is None:
            object.__setattr__(self, "digit_size", self.image_size // 2)
        for name in ("image_size", "num_digits", "seq_len", "digit_size", "max_speed", "channels"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise SVGError(f"SM-MNIST option {name} must be an integer >= 1, got {value!r}")
        if self.image_size < 8:
            raise SVGError(f"SM-MNIST image_size must be >= 8, got {self.image_size}")
        if self.digit_size >= self.image_size:
            raise SVGError(f"SM-MNIST digit_size ({self.digit_size}) must be smaller than image_size "
                           f"({self.image_size}) so the digits can move: use e.g. digit_size="
                           f"{self.image_size // 2}")
        if self.velocity not in VELOCITY_KINDS:
            raise SVGError(f"unknown SM-MNIST velocity distribution {self.velocity!r}: choose one of "
                           f"{', '.join(VELOCITY_KINDS)}")
        if self.channels not in CHANNEL_CHOICES:
            raise SVGError(f"SM-MNIST channels must be 1 or 3 (grey digits copied to RGB), got {self.channels}")
        if not isinstance(self.deterministic, bool):
            raise SVGError(f"SM-MNIST option deterministic must be true or false, got {self.deterministic!r}")

    @property
    def max_position(self) -> int:
        """Largest valid top-left coordinate (the authors' `image_size - digit_size - 1`)."""
        return self.image_size - self.digit_size - 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SMMNISTConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SVGError(f"unknown SM-MNIST options {sorted(unknown)}: known are {sorted(known)}")
        return cls(**d)


# --- velocity distributions ------------------------------------------------------------------


@lru_cache(maxsize=32)
def _velocity_tables(max_speed: int, kind: str) -> tuple[np.ndarray, dict[tuple[int, int], np.ndarray]]:
    """The velocity grid, shape = (K, 2), and one cumulative weight table per wall state.

    Wall state (wx, wy): -1 = hit the low wall (x or y = 0, needs a positive component), +1 = hit
    the high wall (needs a negative one), 0 = no wall on that axis.
    """
    axis = np.arange(-max_speed, max_speed + 1)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)  # (K, 2)
    if kind == "uniform":
        weights = np.ones(len(grid))
    else:
        weights = np.abs(grid).sum(axis=1).astype(np.float64)
    cdfs = {}
    for wx in (-1, 0, 1):
        for wy in (-1, 0, 1):
            valid = np.ones(len(grid), dtype=bool)
            for w, comp in ((wx, grid[:, 0]), (wy, grid[:, 1])):
                if w:
                    valid &= comp * w < 0
            cdfs[(wx, wy)] = np.cumsum(weights * valid)
    grid.setflags(write=False)
    return grid, cdfs


def velocity_distribution(cfg: SMMNISTConfig, wall_x: int = 0, wall_y: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(velocities (K, 2) int, probabilities (K,)) used after hitting the given walls.

    `wall_x`/`wall_y`: -1 low wall (left/top), +1 high wall (right/bottom), 0 none (start of a sequence).
    """
    grid, cdfs = _velocity_tables(cfg.max_speed, cfg.velocity)
    cdf = cdfs[(int(np.sign(wall_x)), int(np.sign(wall_y)))]
    weights = np.diff(cdf, prepend=0.0)
    return grid.copy(), weights / cdf[-1]


def _draw_velocity(rng: Any, grid: np.ndarray, cdf: np.ndarray) -> tuple[int, int]:
    """One velocity from a cumulative table, consuming exactly one `rng.random()`."""
    k = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return int(grid[k, 0]), int(grid[k, 1])


# --- trajectories and frames -----------------------------------------------------------------


def simulate_trajectories(
    rng: Any, cfg: SMMNISTConfig, start_pos: np.ndarray, start_vel: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move digits for `cfg.seq_len` frames; rng is used only at bounces (one `random()` each).

    start_pos, start_vel: shape = (n_digits, 2), (x, y) integers.
    Returns positions (T, n_digits, 2) int64 (top-left, clamped, as drawn in frame t), velocities
    (T, n_digits, 2) int64 (the move from frame t to t+1, after any bounce at t) and bounces
    (T, n_digits) bool (True where a wall hit at frame t changed the velocity).
    """
    grid, cdfs = _velocity_tables(cfg.max_speed, cfg.velocity)
    n_digits, lim = len(start_pos), cfg.max_position
    positions = np.zeros((cfg.seq_len, n_digits, 2), dtype=np.int64)
    velocities = np.zeros_like(positions)
    bounces = np.zeros((cfg.seq_len, n_digits), dtype=bool)
    for d in range(n_digits):
        x, y = int(start_pos[d, 0]), int(start_pos[d, 1])
        vx, vy = int(start_vel[d, 0]), int(start_vel[d, 1])
        for t in range(cfg.seq_len):
            wx = -1 if x < 0 else (1 if x > lim else 0)
            wy = -1 if y < 0 else (1 if y > lim else 0)
            if wx or wy:
                x, y = min(max(x, 0), lim), min(max(y, 0), lim)
                if cfg.deterministic:
                    vx, vy = (-vx if wx else vx), (-vy if wy else vy)
                else:
                    vx, vy = _draw_velocity(rng, grid, cdfs[(wx, wy)])
                bounces[t, d] = True
            positions[t, d] = x, y
            velocities[t, d] = vx, vy
            x, y = x + vx, y + vy
    return positions, velocities, bounces


def render_frames(digit_images: np.ndarray, positions: np.ndarray, cfg: SMMNISTConfig) -> np.ndarray:
    """Draw digits (n_digits, ds, ds) uint8 at positions (T, n_digits, 2): frames (T, C, H, W) uint8."""
    n_frames, size, ds = positions.shape[0], cfg.image_size, cfg.digit_size
    canvas = np.zeros((n_frames, size, size), dtype=np.uint16)  # sums of up to 257 digits fit
    windows = sliding_window_view(canvas, (ds, ds), axis=(1, 2), writeable=True)  # (T, H-ds+1, W-ds+1, ds, ds)
    frame_idx = np.arange(n_frames)
    for d in range(digit_images.shape[0]):
        windows[frame_idx, positions[:, d, 1], positions[:, d, 0]] += digit_images[d]
    frames = np.minimum(canvas, 255).astype(np.uint8)[:, None]  # (T, 1, H, W)
    return np.repeat(frames, cfg.channels, axis=1) if cfg.channels > 1 else frames


_RESIZE_CACHE: dict[tuple[int, int], tuple[weakref.ref, np.ndarray]] = {}


def resize_digits(digits: np.ndarray, size: int) -> np.ndarray:
    """Digits (N, h, w) uint8 resized to (N, size, size) with PIL bilinear; cached per array."""
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.dtype != np.uint8 or len(digits) == 0:
        raise SVGError(f"digits must be a non-empty (N, 28, 28) uint8 array (see svg_core.data.load_digits), "
                       f"got shape {digits.shape} dtype {digits.dtype}")
    if digits.shape[1:] == (size, size):
        return digits
    key = (id(digits), size)
    hit = _RESIZE_CACHE.get(key)
    if hit is not None and hit[0]() is digits:
        return hit[1]
    from PIL import Image

    out = np.empty((len(digits), size, size), dtype=np.uint8)
    for i, digit in enumerate(digits):
        out[i] = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR))
    out.setflags(write=False)
    _RESIZE_CACHE[key] = (weakref.ref(digits, lambda _ref, k=key: _RESIZE_CACHE.pop(k, None)), out)
    return out


def generate_sequence(rng: np.random.Generator, digits: np.ndarray, cfg: SMMNISTConfig) -> dict[str, np.ndarray]:
    """One SM-MNIST sequence (T = cfg.seq_len, D = cfg.num_digits).

    Returns frames (T, C, H, W) uint8 0..255, positions (T, D, 2) float32 (x, y of the digit's
    top-left corner; the centre is position + digit_size / 2), velocities (T, D, 2) int64,
    bounces (T, D) bool and digit_ids (D,) int64 (rows of `digits`, distinct when possible).
    """
    bank = resize_digits(digits, cfg.digit_size)
    n_bank, n_digits = len(bank), cfg.num_digits
    if n_bank >= n_digits:
        ids = rng.choice(n_bank, size=n_digits, replace=False)
    else:
        ids = rng.integers(n_bank, size=n_digits)
    start_pos = rng.integers(0, cfg.max_position + 1, size=(n_digits, 2))
    grid, cdfs = _velocity_tables(cfg.max_speed, cfg.velocity)
    start_cdf = cdfs[(0, 0)]
    start_vel = grid[np.searchsorted(start_cdf, rng.random(n_digits) * start_cdf[-1], side="right")]
    positions, velocities, bounces = simulate_trajectories(rng, cfg, start_pos, start_vel)
    return {
        "frames": render_frames(bank[ids], positions, cfg),
        "positions": positions.astype(np.float32),
        "velocities": velocities,
        "bounces": bounces,
        "digit_ids": np.asarray(ids, dtype=np.int64),
    }


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sequence `index` in the stream `seed` (both >= 0)."""
    if seed < 0 or index < 0:
        raise SVGError(f"SM-MNIST seed and sequence index must be >= 0, got seed {seed}, index {index}")
    return np.random.default_rng([int(seed), int(index)])


def generate_batch(
    seed: int, index: int, n: int, digits: np.ndarray, cfg: SMMNISTConfig
) -> dict[str, np.ndarray]:
    """Sequences index .. index+n-1 of stream `seed`, stacked: frames shape = (n, T, C, H, W) uint8.

    Sequence i always uses `sequence_rng(seed, i)`, whatever the batch it is part of.
    """
    if n < 1:
        raise SVGError(f"SM-MNIST batch size must be >= 1, got {n}")
    bank = resize_digits(digits, cfg.digit_size)
    seqs = [generate_sequence(sequence_rng(seed, i), bank, cfg) for i in range(index, index + n)]
    out = {key: np.stack([s[key] for s in seqs]) for key in seqs[0]}
    out["index"] = np.arange(index, index + n, dtype=np.int64)
    return out


def make_test_set(digits: np.ndarray, cfg: SMMNISTConfig, count: int, seed: int) -> dict[str, np.ndarray]:
    """A fixed test set: `generate_batch(seed, 0, count)` plus its seed and config (JSON, 0-d str array)."""
    data = generate_batch(seed, 0, count, digits, cfg)
    data["seed"] = np.asarray(seed, dtype=np.int64)
    data["config"] = np.asarray(json.dumps(cfg.to_dict(), sort_keys=True))
    return data


def build_smmnist_test_set(out: str | os.PathLike, *, num_digits: int = 2, length: int = 25, count: int = 5000,
                           seed: int = 42, digits: str | None = None, image_size: int = 64) -> Path:
    """A fixed SM-MNIST test set from MNIST TEST digits, reproducible by seed; returns its path (numpy only)."""
    from svg_core.data.digits import load_digits

    if count < 1:
        raise SVGError(f"--count must be >= 1, got {count}")
    cfg = SMMNISTConfig(image_size=image_size, num_digits=num_digits, seq_len=length)
    return save_npz(out, make_test_set(load_digits(digits, split="test"), cfg, count, seed))


def config_of(data: dict[str, np.ndarray]) -> SMMNISTConfig:
    """The SMMNISTConfig stored by `make_test_set` (e.g. after `load_npz`)."""
    if "config" not in data:
        raise SVGError("this SM-MNIST file has no 'config' entry: rebuild it with make_test_set")
    return SMMNISTConfig.from_dict(json.loads(str(data["config"])))



def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an .npz file (no pickle); clear error if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise SVGError(f"no such file {path}: create it first (e.g. `svg data smmnist --out {path}`)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy holds one bare array
            raise SVGError(f"{path} is a single array (.npy), not an .npz archive with a 'frames' array: save it "
                           "with np.savez(FILE.npz, frames=ARRAY) or build a test set with `svg data smmnist`")
        with loaded as z:
            return {key: z[key] for key in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SVGError(f"{path} is not a readable .npz file ({e}): regenerate it") from e
