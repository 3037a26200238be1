"""Training curves from a run's metrics.jsonl, as a PNG."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def read_metrics(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """metrics.jsonl as one array per key (rows missing a key are skipped for it)."""
    path = Path(run_dir, "metrics.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    keys = {k for r in rows for k in r}
    return {k: np.array([r[k] for r in rows if k in r]) for k in keys}


def plot_training_curves(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Reconstruction (MSE summed over steps) and KL against training step; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = read_metrics(run_dir)
    if "step" not in m:
        raise ValueError(f"no metrics in {run_dir}: train first (svg train --out {run_dir})")
    fig, (ax_mse, ax_kl) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax_mse.plot(m["step"], m["mse"])
    ax_mse.set(xlabel="step", ylabel="MSE (sum over predicted frames)", yscale="log", title="reconstruction")
    ax_kl.plot(m["step"], m["kld"], color="tab:orange")
    ax_kl.set(xlabel="step", ylabel="KL(q || p) per sequence", title="KL")
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir, "loss.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
