"""A tiny training configuration shared by the training tests (seconds per run on a CPU)."""

from __future__ import annotations

from svg_core.config import ModelConfig, RunConfig, TrainConfig


def tiny_run(steps: int = 2, checkpoint_every: int = 1000, **train_kw) -> RunConfig:
    """A width-4 DCGAN-64 SVG-LP on 1-digit SM-MNIST, 2 -> 2 frames, batch 2."""
    model = ModelConfig(width=4, g_dim=16, z_dim=3, rnn_size=16)
    kw = dict(batch_size=2, n_past=2, n_future=2, steps=steps, checkpoint_every=checkpoint_every,
              sample_every=1000, num_digits=1, log_every=1, seed=3)
    return RunConfig(model=model, train=TrainConfig(**{**kw, **train_kw}))
