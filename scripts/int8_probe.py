"""Why does `svg export --int8` refuse a trained SM-MNIST model? (issue 15)

Quantizes a run's graphs twice (synthetic and real-frame calibration), without the SSIM gate, and for each
int8 bundle measures against the fp32 bundle (same eps, same contexts, onnxruntime both):
  - the gate's own number (rollout SSIM int8 vs fp32) on synthetic and on real check contexts;
  - that SSIM per predicted step (does the error compound?), and the mean absolute pixel error on the
    background (fp32 pixel < 0.05) and on the digit;
  - what users care about: best-of-N SSIM / PSNR against the true future, int8 vs fp32.

    python scripts/int8_probe.py RUN_DIR --test test1.npz --calib calib.npz --out DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from svg_core.checkpoint import build_model, load_checkpoint, resolve
from svg_core.errors import SVGError
from svg_core.evaluation.metrics import psnr, ssim
from svg_export import quantize
from svg_export.bundle import ExportOptions, export_bundle
from svg_export.cells import model_spec
from svg_runtime.backends import OrtBackend
from svg_runtime.manifest import MANIFEST_NAME, ModelSpec
from svg_runtime.predictor import Predictor


def frames01(npz: Path, n: int) -> np.ndarray:
    return np.load(npz)["frames"][:n].astype(np.float32) / 255


def rollout(bundle: Path, manifest: dict, ctx: np.ndarray, eps: np.ndarray, horizon: int) -> np.ndarray:
    """(B, N, horizon, C, H, W) with onnxruntime, fixed eps (B, N, horizon, z)."""
    spec = ModelSpec.from_manifest(manifest)
    p = Predictor(bundle, manifest, OrtBackend(bundle, manifest, spec))
    out = p.sample(p.observe(ctx), n_samples=eps.shape[1], horizon=horizon, eps=eps).frames
    return out.reshape(ctx.shape[0], eps.shape[1], *out.shape[-4:])


def compare(int8: np.ndarray, fp32: np.ndarray, truth: np.ndarray) -> dict:
    a, b = torch.from_numpy(int8), torch.from_numpy(fp32)
    per_step = ssim(a, b).mean(dim=(0, 1))  # (horizon,)
    bg = fp32 < 0.05
    t = torch.from_numpy(truth)[:, None].expand_as(a)
    s8, s32 = ssim(a, t).mean(-1), ssim(b, t).mean(-1)  # (B, N)
    p8, p32 = psnr(a, t).mean(-1), psnr(b, t).mean(-1)
    return {"ssim_int8_vs_fp32": float(per_step.mean()),
            "ssim_int8_vs_fp32_step1": float(per_step[0]), "ssim_int8_vs_fp32_last": float(per_step[-1]),
            "mean_abs_err_background": float(np.abs(int8 - fp32)[bg].mean()),
            "mean_abs_err_digit": float(np.abs(int8 - fp32)[~bg].mean()),
            "best_ssim_vs_truth": {"int8": float(s8.max(1).values.mean()), "fp32": float(s32.max(1).values.mean())},
            "best_psnr_vs_truth": {"int8": float(p8.max(1).values.mean()), "fp32": float(p32.max(1).values.mean())},
            "mean_ssim_vs_truth": {"int8": float(s8.mean()), "fp32": float(s32.mean())}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--calib", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--samples", type=int, default=10)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    fp32_dir = a.out / "fp32"
    if not fp32_dir.exists():
        export_bundle(ExportOptions(checkpoint=a.run, out=fp32_dir))
    manifest32 = json.loads((fp32_dir / MANIFEST_NAME).read_text())
    model = build_model(load_checkpoint(resolve(a.run))).eval()
    spec = model_spec(model)
    test = frames01(a.test, a.videos)
    ctx, truth = np.ascontiguousarray(test[:, :5]), test[:, 5:]
    horizon = truth.shape[1]
    eps = np.random.default_rng(0).standard_normal((len(ctx), a.samples, horizon, spec.latent_dim), dtype=np.float32)
    fp32 = rollout(fp32_dir, manifest32, ctx, eps, horizon)
    report = {"run": str(a.run), "videos": a.videos, "samples": a.samples, "horizon": horizon}
    synthetic = quantize.split_frames(None, spec)
    real = quantize.split_frames(np.load(a.calib)["frames"], spec)
    for name, frames in (("synthetic", synthetic), ("real", real)):
        bundle = a.out / f"int8_{name}"
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.copytree(fp32_dir, bundle)
        manifest = json.loads(json.dumps(manifest32))
        try:
            quantize.quantize_bundle(model, bundle, manifest, 20, frames, user_frames=name == "real")
        except SVGError as e:
            print(name, "gate:", e)
        gate = {"own_check": manifest["quantization"]["rollout"]["ssim_mean"],
                "on_synthetic_check": quantize.rollout_check(model, bundle, manifest, synthetic[1])["ssim_mean"],
                "on_real_check": quantize.rollout_check(model, bundle, manifest, real[1])["ssim_mean"]}
        report[name] = {"gate_ssim": gate, **compare(rollout(bundle, manifest, ctx, eps, horizon), fp32, truth)}
        print(name, json.dumps(report[name], indent=1))
    (a.out / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
