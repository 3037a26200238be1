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
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from svg_runtime.atomic import save_npz
from svg_runtime.context import conform_frames, load_actions, load_context
from svg_runtime.errors import SVGRuntimeError
from svg_runtime.manifest import state_specs
from svg_runtime.media import save_video, video_grid
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
    horizon: int | None = None  # None: the actions' length, else 10
    actions: Path | None = None  # .npy/.npz of future actions (H, A), (K, H, A) or (B, K, H, A)
    seed: int | None = None  # None: a fresh seed, reported (and stored in the NPZ) for repeating the run
    backend: str = "auto"
    device: str = "cpu"
    n_cond: int | None = None  # condition on the first n_cond frames of the context (None: all)
    fps: float = 4.0
    n_show: int = 8  # samples shown in the video grid (the NPZ holds all)
    threads: int | None = None

    def validate(self) -> None:
        for name, value in (("samples", self.n_samples), ("horizon", self.horizon or 1), ("show", self.n_show)):
            if value < 1:
                raise SVGRuntimeError(f"--{name} must be >= 1, got {value}")
        if self.n_cond is not None and self.n_cond < 1:
            raise SVGRuntimeError(f"--cond must be >= 1 (the number of context frames to condition on), "
                                  f"got {self.n_cond}")
        if not self.fps > 0:
            raise SVGRuntimeError(f"--fps must be > 0, got {self.fps}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise SVGRuntimeError(f"--seed must be a non-negative integer, got {self.seed}")
        context = Path(self.context).resolve()
        for path in self.outputs():
            if path.resolve() == context:
                raise SVGRuntimeError(f"--out {path} is the --context file: writing it would destroy the input; "
                                      "choose another --out")

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

    horizon: int = 0
    sequences: int = 0  # candidate action sequences (0: an unconditional model)

    @property
    def ms_per_step(self) -> float:
        return 1000 * self.seconds / self.horizon


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
    ctx_actions, actions = _rollout_actions(opts, p, ctx.source, len(frames), n_cond)
    horizon = opts.horizon or (actions.shape[2] if actions is not None else 10)
    if actions is not None and actions.shape[2] != horizon:
        raise SVGRuntimeError(f"--horizon {horizon} differs from the {actions.shape[2]} steps of {opts.actions}: "
                              "drop --horizon or give as many actions")
    check_memory(p, frames.shape[0] * (1 if actions is None else actions.shape[1]), opts.n_samples, horizon)
    state = p.observe(frames[:, :n_cond], actions=ctx_actions)  # validates dtype, range and NaN
    start = time.perf_counter()
    out = p.sample(state, n_samples=opts.n_samples, horizon=horizon, seed=seed, actions=actions)
    seconds = time.perf_counter() - start
    described = ctx.describe()
    if frames.shape != ctx.frames.shape:
        described += f", converted to {'x'.join(map(str, frames.shape[2:]))}"
    report = RolloutReport(opts, described, n_cond, seed, seconds, p.spec.kind, p.backend.name, horizon=horizon,
                           sequences=0 if actions is None else actions.shape[1])
    given = np.nan_to_num(_as_float(frames))  # (B, T, C, H, W); frames past --cond are shown, not checked
    for path in opts.outputs():
        if path.suffix.lower() == ".npz":
            extra = {} if actions is None else {"actions": actions}
            save_npz(path, {"frames": out.frames, "mu": out.mu, "sigma": out.sigma, "eps": out.eps,
                            "context": given[:, :n_cond], "seed": np.int64(seed), **extra}, compress=False)
        else:
            save_video(path, rollout_grid(given, n_cond, out, opts.n_show), fps=opts.fps)
        report.written.append(path)
    log.info("rollout of %s: %s", opts.bundle, report.written)
    return report


def _rollout_actions(opts: RolloutOptions, p: Predictor, source: str, batch: int, n_cond: int
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(actions between the conditioning frames (B, n_cond-1, A), candidate sequences (B, K, H, A)):
    the first from the context .npz's `actions`, the second from --actions."""
    if not p.spec.has_actions:
        if opts.actions is not None:
            raise SVGRuntimeError(f"--actions given but {opts.bundle} was trained without actions: drop --actions")
        return None, None
    if opts.actions is None:
        raise SVGRuntimeError(f"{opts.bundle} is action-conditioned: pass --actions FILE.npy with the future actions "
                              f"(H, {p.spec.action_dim}), (K, H, {p.spec.action_dim}) or (B, K, H, {p.spec.action_dim})")
    seqs = np.asarray(load_actions(opts.actions))
    if seqs.ndim == 2:
        seqs = seqs[None]
    if seqs.ndim == 3:
        seqs = np.broadcast_to(seqs[None], (batch, *seqs.shape))
    if seqs.ndim != 4 or seqs.shape[0] != batch:
        raise SVGRuntimeError(f"{opts.actions} holds actions of shape {seqs.shape}: give (H, A), (K, H, A) or "
                              f"(B, K, H, A) with B = {batch} videos")
    ctx = None
    if n_cond > 1:
        ctx = load_actions(source) if Path(source).suffix.lower() == ".npz" else None
        if ctx is None:
            raise SVGRuntimeError(f"{source} holds no 'actions' between its {n_cond} conditioning frames: store them "
                                  "in the .npz as 'actions' (T-1, A), or condition on one frame with --cond 1")
        ctx = np.asarray(ctx)
        ctx = ctx[None] if ctx.ndim == 2 else ctx
        if ctx.ndim != 3 or ctx.shape[1] < n_cond - 1:
            raise SVGRuntimeError(f"{source}: its actions {ctx.shape} do not cover the {n_cond - 1} steps between "
                                  f"the conditioning frames (want (B, T-1, A))")
        ctx = ctx[:, :n_cond - 1]
    return ctx, np.ascontiguousarray(seqs)


def check_memory(p: Predictor, n_videos: int, n_samples: int, horizon: int) -> None:
    """Refuse a rollout whose arrays (frames, mu, sigma, eps and the forked state) cannot fit in the
    memory available now, before allocating any of it (n_videos: videos x action sequences)."""
    n = n_videos * n_samples
    per_sample = horizon * (int(np.prod(p.spec.frame_shape)) + 3 * p.spec.latent_dim)
    per_sample += sum(int(np.prod(s.shape)) for s in state_specs(p.spec))
    need = 4 * n * per_sample  # float32
    available = _available_memory()
    if available is not None and need > available:
        raise SVGRuntimeError(f"{n_videos} video(s) x {n_samples} samples x {horizon} frames need about "
                              f"{need / 2**30:.1f} GiB but {available / 2**30:.1f} GiB are free: lower --samples "
                              "or --horizon, or split the context into several runs")


def _available_memory() -> int | None:
    """Bytes that can be allocated now without swapping (Linux's MemAvailable counts reclaimable
    cache, which plain free pages do not), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):  # not on this platform: let the allocation decide
        return None


def rollout_grid(given: np.ndarray, n_cond: int, out: Rollout, n_show: int) -> np.ndarray:
    """The video grid (T, H', W', 3) uint8 of conditioning frames + samples, ground truth first
    when `given` (B, T, C, H, W) in [0, 1] has frames past the first n_cond."""
    if out.frames.ndim == 7:  # (B, K, N, ...): one row per video and action sequence
        b, k = out.frames.shape[:2]
        given = np.repeat(given, k, axis=0)
        out = Rollout(frames=out.frames.reshape(b * k, *out.frames.shape[2:]), mu=out.mu, sigma=out.sigma, eps=out.eps)
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
