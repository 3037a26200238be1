"""Compare the loss curves of two runs that differ only in --amp (e.g. bf16 vs none).

    python benchmarks/amp_compare.py RUN_BF16 RUN_FP32 OUT.png

Prints the mean loss terms over the last quarter of the steps and the largest gap between the
curves; plots loss, MSE and KL against step for both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from svg_core.curves import read_metrics


def summarize(name: str, m: dict[str, np.ndarray]) -> str:
    tail = m["step"] >= m["step"][-1] * 0.75
    return (f"{name}: steps {int(m['step'][-1])}, last-quarter mean loss {m['loss'][tail].mean():.4f} "
            f"mse {m['mse'][tail].mean():.4f} kl {m['kld'][tail].mean():.3f}")


def main(run_a: str, run_b: str, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {Path(run_a).name: read_metrics(run_a), Path(run_b).name: read_metrics(run_b)}
    (name_a, a), (name_b, b) = runs.items()
    n = min(len(a["step"]), len(b["step"]))
    gap = np.abs(a["loss"][:n] - b["loss"][:n]) / b["loss"][:n]
    for name, m in runs.items():
        print(summarize(name, m))
    print(f"largest relative gap between the loss curves: {gap.max():.3f} (step {int(a['step'][gap.argmax()])}), "
          f"median {np.median(gap):.3f}")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key, label in zip(axes, ("loss", "mse", "kld"), ("loss", "MSE (summed over steps)", "KL"), strict=True):
        for name, m in runs.items():
            ax.plot(m["step"], m[key], label=name)
        ax.set_xlabel("step")
        ax.set_title(label)
        ax.set_yscale("log")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
