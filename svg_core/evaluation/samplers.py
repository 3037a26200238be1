"""What evaluation samples from: a torch checkpoint or an exported bundle, behind one small interface.

A sampler maps context frames (V, K, C, H, W) and noise eps (V, N, H, z) to N futures of H frames
per video. The noise of video i is drawn from `np.random.default_rng([seed, i])` (`draw_eps`), so
the numbers do not depend on how videos are batched, and a checkpoint and its bundle given the
same seed sample the same futures.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from svg_core.errors import SVGError
from svg_runtime.manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from svg_core.config import RunConfig

log = logging.getLogger("svg")


@dataclass
class SampleBatch:
    """frames (V, N, H, C, H, W) float32 in [0, 1]; sigma (V, N, H, z) of the prior (FP: 1, det: z = 0)."""

    frames: np.ndarray
    sigma: np.ndarray


class Sampler(Protocol):
    """The interface evaluation needs; see TorchSampler and BundleSampler."""

    source: str  # "checkpoint" | "bundle"
    kind: str  # lp | fp | det
    z_dim: int  # size of eps per step (0 for det)
    frame_shape: tuple[int, int, int]  # (C, H, W)
    n_past: int | None  # conditioning frames used in training, when known
    train_horizon: int | None  # n_past + n_future used in training, when known
    config: RunConfig | None  # the training run's full config (checkpoints only: a bundle has no dataset options)
    has_prior_sigma: bool  # whether prior_sigma_on_frames can run (an SVG-LP checkpoint)

    def sample(self, context: np.ndarray, eps: np.ndarray) -> SampleBatch: ...

    def prior_sigma_on_frames(self, frames: np.ndarray) -> np.ndarray:
        """The learned prior's sigma (B, T-1, z) when fed true frames (B, T, C, H, W)."""

    def describe(self) -> dict[str, Any]: ...


def draw_eps(seed: int, video_indices: np.ndarray, n_samples: int, horizon: int, z_dim: int) -> np.ndarray:
    """eps (V, N, H, z) float32: video i's noise comes from default_rng([seed, i]) alone."""
    out = np.empty((len(video_indices), n_samples, horizon, z_dim), np.float32)
    for row, i in enumerate(video_indices):
        out[row] = np.random.default_rng([int(seed), int(i)]).standard_normal((n_samples, horizon, z_dim),
                                                                            dtype=np.float32)
    return out


class TorchSampler:
    """Samples with svg_core.sampling.generate from a checkpoint (run directory or .safetensors)."""

    source = "checkpoint"

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        import torch

        from svg_core.checkpoint import build_model, load_checkpoint

        ckpt = load_checkpoint(path)
        self.path, self.device, self.step = Path(path), torch.device(device), ckpt.step
        self.config = ckpt.config
        self.model = build_model(ckpt, self.device).eval()
        m, t = self.config.model, self.config.train
        self.kind, self.z_dim = m.kind, (m.z_dim if m.has_latent else 0)
        self.frame_shape = (m.channels, m.image_size, m.image_size)
        self.n_past, self.train_horizon = t.n_past, t.n_past + t.n_future
        self.has_prior_sigma = self.kind == "lp"

    def sample(self, context: np.ndarray, eps: np.ndarray) -> SampleBatch:
        import torch

        from svg_core.sampling import generate

        ctx = torch.from_numpy(np.ascontiguousarray(context, np.float32)).to(self.device)
        e = torch.from_numpy(np.ascontiguousarray(eps, np.float32)).to(self.device)
        gen = generate(self.model, ctx, horizon=eps.shape[2], n_samples=eps.shape[1], eps=e)
        sigma = gen.sigma if self.kind == "lp" else torch.ones_like(gen.mu)  # FP: N(0, I)
        return SampleBatch(frames=gen.frames.float().cpu().numpy(), sigma=sigma.float().cpu().numpy())

    def prior_sigma_on_frames(self, frames: np.ndarray) -> np.ndarray:
        """The learned prior's sigma when fed true frames (B, T, C, H, W): (B, T-1, z).

        Entry t-1 is sigma_psi(x_{1:t-1}), the prior over z_t of frame t. Only the encoder and the
        prior run: the prior never sees the posterior or the predictor.
        """
        import torch

        from svg_core.sampling import eval_mode

        if self.model.prior is None:
            raise SVGError(f"a {self.kind} model has no learned prior: prior sigma needs an SVG-LP checkpoint")
        x = torch.from_numpy(np.ascontiguousarray(frames, np.float32)).to(self.device)
        with eval_mode(self.model):
            h_all, _ = self.model.encode_frames(x)  # (B, T, g_dim)
            state = self.model.prior.zero_state(x.shape[0], x.device, h_all.dtype)
            zero = h_all.new_zeros(x.shape[0], self.model.cfg.z_dim)
            sigmas = []
            for t in range(1, x.shape[1]):
                _, _, logvar, *state = self.model.prior(h_all[:, t - 1], *state, zero)
                sigmas.append(torch.exp(0.5 * logvar))
        return torch.stack(sigmas, 1).float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "path": str(self.path), "step": self.step, "kind": self.kind,
                "config": self.config.to_dict()}


class BundleSampler:
    """Samples with the torch-free svg_runtime.Predictor from an exported bundle directory."""

    source = "bundle"

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        from svg_runtime import Predictor

        self.path = Path(path)
        self.predictor = Predictor.load(self.path, device=device)
        spec = self.predictor.spec
        self.kind, self.z_dim, self.frame_shape = spec.kind, spec.latent_dim, spec.frame_shape
        self.n_past, self.train_horizon = _bundle_training_horizon(self.predictor.manifest, self.path)
        self.config = None  # the manifest keeps the train options, not the run's dataset config
        self.has_prior_sigma = False  # the step graph fuses the prior into the sampling step

    def sample(self, context: np.ndarray, eps: np.ndarray) -> SampleBatch:
        state = self.predictor.observe(np.ascontiguousarray(context, np.float32))
        out = self.predictor.sample(state, n_samples=eps.shape[1], horizon=eps.shape[2], eps=eps)
        return SampleBatch(frames=out.frames, sigma=out.sigma)

    def prior_sigma_on_frames(self, frames: np.ndarray) -> np.ndarray:
        raise SVGError("prior sigma on true frames needs the torch checkpoint (the bundle's graphs fuse the "
                       "prior into the sampling step): pass the run directory instead of the bundle")

    def describe(self) -> dict[str, Any]:
        m = self.predictor.manifest
        return {"source": self.source, "path": str(self.path), "kind": self.kind, "model": m.get("model"),
                "checkpoint": m.get("checkpoint"), "backend": self.predictor.backend.name}


def _bundle_training_horizon(manifest: dict[str, Any], bundle: Path) -> tuple[int | None, int | None]:
    """(n_past, n_past + n_future) from the manifest or the exported run's config.json, when known."""
    train = manifest.get("train")
    if not train:
        ckpt = (manifest.get("checkpoint") or {}).get("path")
        candidates = [Path(ckpt).parent / "config.json"] if ckpt else []
        candidates = [c if c.is_absolute() else bundle / c for c in candidates]
        for c in candidates:
            if c.is_file():
                try:
                    train = json.loads(c.read_text()).get("train")
                except (OSError, json.JSONDecodeError):
                    train = None
                break
    if not train or "n_past" not in train:
        return None, None
    return int(train["n_past"]), int(train["n_past"]) + int(train.get("n_future", 0))


def is_bundle(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


def load_sampler(path: str | os.PathLike, device: str = "cpu") -> Sampler:
    """A run directory or checkpoint file -> TorchSampler; a bundle directory (manifest.json) or
    `pretrained:NAME` -> BundleSampler."""
    from svg_runtime.pretrained import resolve_bundle

    p = resolve_bundle(path)
    if not p.exists():
        raise SVGError(f"{p} does not exist: pass a run directory, a checkpoint file or an exported bundle")
    if is_bundle(p):
        return BundleSampler(p, device)
    return TorchSampler(p, device)
