"""Tiny exported bundles shared by the export, runtime and manifest tests (each exported once per
test process: exporting takes seconds, so test modules share them through this cache)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from svg_core.checkpoint import save_checkpoint
from svg_core.config import ModelConfig, RunConfig, action_normalisation
from svg_core.lstm import LSTMCell
from svg_core.model import SVG

TINY = dict(width=4, g_dim=16, z_dim=4, rnn_size=32)
# every model kind, both backbones at 64x64, and one 128x128 RGB model
MODELS = {
    "lp": dict(kind="lp", backbone="dcgan"),
    "fp": dict(kind="fp", backbone="dcgan", last_frame_skip=True),
    "det": dict(kind="det", backbone="vgg"),
    "lp128": dict(kind="lp", backbone="vgg", image_size=128, channels=3),
}
# action-conditioned models (2-D actions in "workspace units", as PushT's): LP with the action in
# the prior too, and FP (the action joins the predictor only)
ACTION_MODELS = {
    "lp_act": dict(kind="lp", backbone="dcgan", action_dim=2, action_mean=(256.0, 250.0), action_std=(90.0, 110.0),
                   action_names=("target_x", "target_y")),
    "fp_act": dict(kind="fp", backbone="dcgan", action_dim=2, action_prior=False, last_frame_skip=True),
    "pusht_act": dict(kind="lp", backbone="dcgan", channels=3, action_dim=2, action_mean=(256.0, 256.0),
                      action_std=(150.0, 150.0), action_names=("target_x", "target_y")),
}


@dataclass
class Bundle:
    name: str
    path: Path
    run: Path
    model: SVG
    manifest: dict


_CACHE: dict[str, Bundle] = {}


def make_run(root: Path, name: str, **overrides) -> tuple[Path, SVG]:
    """A run directory holding a tiny random checkpoint that behaves like a trained one.

    The paper's init (N(0, 0.02)) makes a model whose output hardly depends on its inputs, and
    bigger random weights make activations explode with depth. So: weights that keep signals
    O(1), and BatchNorm statistics measured on random sequences (as training would), so that
    every frame, state and eps visibly changes the output and BatchNorm folding is tested."""
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY, **overrides})
    model = make_responsive(SVG(cfg))
    run = root / f"run_{name}"
    run.mkdir()
    save_checkpoint(run, model, RunConfig(model=cfg), step=3)
    return run, model.eval()


def make_responsive(model: SVG) -> SVG:
    """Weights under which every input visibly moves the output (see make_run), in place."""
    cfg = model.cfg
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                m.weight.normal_(0.0, 1.0 / m.weight[0].numel() ** 0.5)
                m.bias.uniform_(-0.1, 0.1)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.3, 0.8)
                m.bias.uniform_(-0.2, 0.2)
                m.momentum = None  # running statistics = plain average over the calibration batches
            elif isinstance(m, LSTMCell):
                for p in m.parameters():
                    p.uniform_(-2 / m.hidden_size ** 0.5, 2 / m.hidden_size ** 0.5)
        model.train()
        for _ in range(2):
            actions = random_actions(cfg, 4, 3) if cfg.has_actions else None
            model.training_loss(torch.rand(4, 4, cfg.channels, cfg.image_size, cfg.image_size), n_past=2, beta=1e-4,
                                actions=actions)
    return model


def random_context(spec, b: int = 2, t: int = 3, seed: int = 0) -> np.ndarray:
    """Context frames (b, t, C, H, W) float32 in [0, 1] for a model spec."""
    return np.random.default_rng(seed).random((b, t, *spec.frame_shape), dtype=np.float32)


def random_actions(cfg: ModelConfig, *lead: int, seed: int = 0) -> torch.Tensor:
    """Actions (*lead, A) in the model's units: N(mean, std) of its action statistics."""
    mean, std = action_normalisation(cfg)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*lead, cfg.action_dim, generator=gen) * torch.tensor(std) + torch.tensor(mean)


def get_bundle(tmp_path_factory, name: str, fp16: bool = False) -> Bundle:
    """The exported bundle of MODELS[name] (fp16: its mixed-precision variant)."""
    key = f"{name}-fp16" if fp16 else name
    if key not in _CACHE:
        from svg_export.bundle import ExportOptions, export_bundle

        torch.set_num_threads(1)
        root = tmp_path_factory.mktemp(f"bundle_{key}")
        run, model = make_run(root, key, **{**MODELS, **ACTION_MODELS}[name])
        manifest = export_bundle(ExportOptions(checkpoint=run, out=root / "bundle", fp16=fp16))
        _CACHE[key] = Bundle(key, root / "bundle", run, model, manifest)
    return _CACHE[key]
