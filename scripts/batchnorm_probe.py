"""BatchNorm at generation: running statistics (ours) against each batch's own statistics (issue 16).

Training normalises over the B*T true frames of a batch. At generation we apply the running
statistics (eval mode) to the model's own predictions; the authors' code never switched to eval
mode, so its BatchNorm normalised each generation step over that step's batch of predicted frames.
This evaluates one checkpoint both ways with the same protocol and noise (`svg eval`'s), and prints
the best-of-N SSIM / PSNR of each:

    python scripts/batchnorm_probe.py RUN --data test1.npz --out DIR [--samples 20]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from svg_core.evaluation.protocol import EvalOptions
from svg_core.evaluation.runner import run_eval


def batch_statistics_forward(module: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the batch it is given, in any mode; the running statistics stay as they are."""
    return F.batch_norm(x, None, None, module.weight, module.bias, True, 0.0, module.eps)


def summary(results: dict) -> dict:
    m = results["metrics"]
    return {"ssim_best": round(m["ssim"]["best"]["mean"], 4), "ssim_ci95": round(m["ssim"]["best"]["ci95"], 4),
            "psnr_best": round(m["psnr"]["best"]["mean"], 2), "psnr_ci95": round(m["psnr"]["best"]["ci95"], 2),
            "diversity": round(results["diversity"]["mean"], 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=20)
    a = ap.parse_args()
    opts = EvalOptions(n_samples=a.samples)
    rows = {"running statistics (eval mode, ours)": run_eval(a.run, a.data, a.out / "running", opts).results}
    plain = nn.BatchNorm2d.forward
    nn.BatchNorm2d.forward = batch_statistics_forward
    try:
        rows["each batch's statistics (the authors' code)"] = run_eval(a.run, a.data, a.out / "batch", opts).results
    finally:
        nn.BatchNorm2d.forward = plain
    table = {name: summary(r) for name, r in rows.items()}
    (a.out / "summary.json").write_text(json.dumps(table, indent=2) + "\n")
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
