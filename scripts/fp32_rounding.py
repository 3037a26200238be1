"""How much does PyTorch itself round along a rollout? (the export parity rule, issue 16)

Runs svg_export.verify.rollout_error (onnxruntime bundle vs PyTorch fp32), then PyTorch fp32 against
the same model in fp64 on a noise context and on real frames, same eps: the max abs difference of the
frames (overall and every 4th step) and of the prior's mu.

    python scripts/fp32_rounding.py RUN BUNDLE --data test1.npz
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch

from svg_core import sampling
from svg_core.checkpoint import build_model, load_checkpoint, resolve
from svg_export import verify


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--data", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = build_model(load_checkpoint(resolve(a.run))).eval()
    manifest = json.loads((a.bundle / "manifest.json").read_text())
    print("onnxruntime vs PyTorch fp32:", verify.rollout_error(model, a.bundle, manifest))
    rng = np.random.default_rng(0)
    b, k, h, n = 2, 5, 20, 3
    contexts = {"noise": rng.random((b, k, *model_frame(model)), dtype=np.float32),
                "real": (np.load(a.data)["frames"][:b, :k] / 255).astype(np.float32)}
    model64 = copy.deepcopy(model).double()
    for name, ctx in contexts.items():
        eps = rng.standard_normal((b, n, h, model.cfg.z_dim), dtype=np.float32)
        g32 = sampling.generate(model, torch.from_numpy(ctx), h, n, eps=torch.from_numpy(eps))
        g64 = sampling.generate(model64, torch.from_numpy(ctx).double(), h, n, eps=torch.from_numpy(eps).double())
        diff = (g32.frames.double() - g64.frames).abs()
        print(f"{name} context, PyTorch fp32 vs fp64: frames max {float(diff.max()):.3g}, every 4th step "
              f"{[f'{float(v):.2g}' for v in diff.amax(dim=(0, 1, 3, 4, 5))[::4]]}, "
              f"mu max {float((g32.mu.double() - g64.mu).abs().max()):.3g}")


def model_frame(model: torch.nn.Module) -> tuple[int, int, int]:
    cfg = model.cfg
    return cfg.channels, cfg.image_size, cfg.image_size


if __name__ == "__main__":
    main()
