"""`svg rollout` as a library call: a bundle + context file -> sampled futures as GIF/MP4 and/or NPZ.

    report = run_rollout(RolloutOptions(bundle="bundles/smmnist", context="clip.gif", out="out.gif",
                                        n_samples=10, horizon=20, seed=0))

The grid's rows are videos; its columns are the given video (only when the file holds frames past
the conditioning ones: the ground truth to compare with) and then samples, each showing the
conditioning frames (green border) followed by its predicted frames. The NPZ holds every sample:
frames (B, N, H, C, h, w) float32 in [0, 1], mu, sigma, eps (B, N, H, z_dim), the conditioning
frames `context` (B, K, C, h, w) float32 and the `seed`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from svg_runtime.context import conform_frames, load_context
from svg_runtime.errors import SVGRuntimeError
from svg_runtime.media import save_arrays, save_video, video_grid
from svg_runtime.predictor import Predictor, Rollout

log = logging.getLogger("svg")
VIDEO_OUT = (".gif", ".mp4")
DIR_OUT_NAMES = ("rollout.gif", "rollout.npz")  # what a directory OUT receives


@dataclass(frozen=True)
class RolloutOptions:
    """What `svg rollout` does; `validate` runs before any work."""

    bundle: Path
    context: Path
    out: Path
    n_samples: int = 10
    horizon: int = 10
    seed: int | None = None  # None: a fresh seed, reported (and stored in the NPZ) for repeating the run
    backend: str = "auto"
    device: str = "cpu"
    n_cond: int | None = None  # condition on the first n_cond frames of the context (None: all)
    fps: float = 4.0
    n_show: int = 8  # samples shown in the video grid (the NPZ holds all)
    threads: int | None = None

    def validate(self) -> None:
        for name, value in (("samples", self.n_samples), ("horizon", self.horizon), ("show", self.n_show)):
            if value < 1:
                raise SVGRuntimeError(f"--{name} must be >= 1, got {value}")
        if self.n_cond is not None and self.n_cond < 1:
            raise SVGRuntimeError(f"--cond must be >= 1 (the number of context frames to condition on), "
                                  f"got {self.n_cond}")
        if not self.fps > 0:
            raise SVGRuntimeError(f"--fps must be > 0, got {self.fps}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise SVGRuntimeError(f"--seed must be a non-negative integer, got {self.seed}")
        self.outputs()

    def outputs(self) -> list[Path]:
        """Files to write: OUT.gif / OUT.mp4 (grid), OUT.npz (arrays), or a directory OUT: both."""
        out = Path(self.out)
        suffix = out.suffix.lower()
        if suffix in (*VIDEO_OUT, ".npz"):
            return [out]
        if out.is_dir() or (not suffix and not out.exists()):
            return [out / name for name in DIR_OUT_NAMES]
        raise SVGRuntimeError(f"cannot write {out}: --out must end in .gif, .mp4 or .npz, or be a directory "
                              "(which receives rollout.gif and rollout.npz)")


@dataclass
class RolloutReport:
    """What a rollout did: the options, the context's description, the seed, the sampling time
    (observing the context excluded), the files written."""

    options: RolloutOptions
    context: str
    n_cond: int
    seed: int
    seconds: float
    kind: str
    backend: str
    written: list[Path] = field(default_factory=list)

    @property
    def ms_per_step(self) -> float:
        return 1000 * self.seconds / self.options.horizon


def run_rollout(opts: RolloutOptions) -> RolloutReport:
    """Load the bundle and the context, sample, write the outputs."""
    opts.validate()
    p = Predictor.load(opts.bundle, backend=opts.backend, device=opts.device, threads=opts.threads)
    ctx = load_context(opts.context)
    frames = conform_frames(ctx.frames, p.spec.frame_shape, where=f"{ctx.source} (read as {ctx.layout})")
    n_frames = frames.shape[1]
    n_cond = n_frames if opts.n_cond is None else opts.n_cond
    if n_cond > n_frames:
        raise SVGRuntimeError(f"--cond {n_cond} needs at least {n_cond} context frames but {ctx.source} holds "
                              f"{n_frames}")
    seed = int(np.random.default_rng().integers(2**31)) if opts.seed is None else opts.seed
    state = p.observe(frames[:, :n_cond])  # validates dtype, range and NaN
    start = time.perf_counter()
    out = p.sample(state, n_samples=opts.n_samples, horizon=opts.horizon, seed=seed)
    seconds = time.perf_counter() - start
    described = ctx.describe()
    if frames.shape != ctx.frames.shape:
        described += f", converted to {'x'.join(map(str, frames.shape[2:]))}"
    report = RolloutReport(opts, described, n_cond, seed, seconds, p.spec.kind, p.backend.name)
    given = np.nan_to_num(_as_float(frames))  # (B, T, C, H, W); frames past --cond are shown, not checked
    for path in opts.outputs():
        if path.suffix.lower() == ".npz":
            save_arrays(path, frames=out.frames, mu=out.mu, sigma=out.sigma, eps=out.eps,
                        context=given[:, :n_cond], seed=np.int64(seed))
        else:
            save_video(path, rollout_grid(given, n_cond, out, opts.n_show), fps=opts.fps)
        report.written.append(path)
    log.info("rollout of %s: %s", opts.bundle, report.written)
    return report


def rollout_grid(given: np.ndarray, n_cond: int, out: Rollout, n_show: int) -> np.ndarray:
    """The video grid (T, H', W', 3) uint8 of conditioning frames + samples, ground truth first
    when `given` (B, T, C, H, W) in [0, 1] has frames past the first n_cond."""
    b, n, horizon = out.frames.shape[:3]
    n_show = min(n_show, n)
    length = n_cond + horizon
    cond = np.broadcast_to(given[:, None, :n_cond], (b, n_show, *given[:, :n_cond].shape[1:]))
    columns = np.concatenate([cond, out.frames[:, :n_show]], axis=2)  # (B, n_show, length, C, H, W)
    present = np.ones(columns.shape[:3], bool)
    labels = [f"sample {i + 1}" for i in range(n_show)]
    if given.shape[1] > n_cond:
        truth = np.zeros((b, 1, length, *given.shape[2:]), np.float32)
        shown = min(given.shape[1], length)
        truth[:, 0, :shown] = given[:, :shown]
        columns = np.concatenate([truth, columns], axis=1)
        truth_present = np.zeros((b, 1, length), bool)
        truth_present[:, :, :shown] = True
        present = np.concatenate([truth_present, present], axis=1)
        labels = ["ground truth", *labels]
    return video_grid(columns, marked=n_cond, present=present, row_labels=[f"video {i + 1}" for i in range(b)],
                      col_labels=labels)


def _as_float(frames: np.ndarray) -> np.ndarray:
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / np.float32(255)
    return frames.astype(np.float32)
