"""`svg export`: checkpoint -> bundle directory (ONNX graphs, manifest, optional TensorRT engines).

The bundle is built in a temporary directory next to the target, verified against PyTorch, and
renamed into place: a failed or interrupted export never leaves a half-written bundle.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from svg_core.checkpoint import build_model, load_checkpoint, resolve
from svg_core.errors import SVGError
from svg_core.model import SVG
from svg_export import verify
from svg_export.cells import Cell, export_model, model_spec
from svg_export.onnx_export import MAX_OPSET, export_cell
from svg_runtime.atomic import atomic_write_text, make_temp_dir, remove_stale_temp_files, replace_dir
from svg_runtime.hashing import sha256_file
from svg_runtime.manifest import FORMAT, MANIFEST_NAME, SCHEMA_VERSION, ModelSpec, validate_manifest
from svg_runtime.version import __version__

log = logging.getLogger("svg")
# fp32 graphs must match PyTorch to float rounding. fp16 convolutions carry ~1e-3 relative error
# per layer; 1e-2 on [0, 1] pixels is 2.5 grey levels of 255, below what a viewer or SSIM notices.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


@dataclass(frozen=True)
class ExportOptions:
    """What `svg export` does; validated before any work."""

    checkpoint: Path  # a run directory or its checkpoint.safetensors
    out: Path
    fp16: bool = False
    int8: bool = False  # int8 convolutions for onnxruntime on the CPU (svg_export.quantize)
    calibration: Path | None = None  # .npy of frames (N, T, C, H, W) to calibrate --int8 on
    trt: bool = False
    max_batch: int = 256
    opt_batch: int = 100
    force: bool = False
    opset: int = MAX_OPSET

    def __post_init__(self) -> None:
        if not 1 <= self.opt_batch <= self.max_batch:
            raise SVGError(f"need 1 <= --opt-batch <= --max-batch, got {self.opt_batch} and {self.max_batch}")
        if not 17 <= self.opset <= MAX_OPSET:
            raise SVGError(f"opset must be in 17..{MAX_OPSET} (TensorRT 10 reads at most {MAX_OPSET}), "
                           f"got {self.opset}")
        if self.int8 and (self.fp16 or self.trt):
            raise SVGError("--int8 makes a bundle for onnxruntime on the CPU: it does not combine with --fp16 "
                           "or --trt (export a separate fp32/fp16 bundle for TensorRT)")
        if self.calibration is not None and not self.int8:
            raise SVGError("--calibration only applies to --int8 exports")

    @property
    def precision(self) -> str:
        return "fp16" if self.fp16 else "fp32"


# progress(stage, done, total): called after each stage of an export (a graph, the rollout check...)
Progress = Callable[[str, int, int], None]


class _Stages:
    """Counts finished export stages for a progress callback."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def finished(self, stage: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(stage, self.done, self.total)


def export_bundle(opts: ExportOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Export, verify and write a bundle; returns its manifest. Raises SVGError on any failure
    (parity above tolerance included) and then leaves nothing behind. `progress(stage, done, total)`
    is called after each stage (one per graph, the rollout check, int8, TensorRT, the write)."""
    start = time.perf_counter()
    out = Path(opts.out)
    _check_target(out, opts.force)
    trt_info = None
    if opts.trt:
        from svg_export.trt import require_tensorrt

        trt_info = require_tensorrt()  # before anything is written
    ckpt_path = resolve(opts.checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    model = build_model(ckpt).eval()
    frames = None
    if opts.int8:  # checked before any work
        from svg_export.quantize import load_calibration, split_frames

        frames = split_frames(load_calibration(opts.calibration), model_spec(model))
    stages = _Stages(progress, len(model_spec(model).graphs()) + 2 + opts.int8 + (trt_info is not None))
    out.parent.mkdir(parents=True, exist_ok=True)
    for stem in (f".{out.name}.partial", f".{out.name}.old"):  # left by an export that was killed
        remove_stale_temp_files(out.parent, stem)
    staging = make_temp_dir(out.parent, f".{out.name}.partial")
    try:
        manifest = _build(model, opts, staging, ckpt_path, ckpt.step, stages)
        manifest["train"] = dataclasses.asdict(ckpt.config.train)  # n_past etc. for evaluation tools
        if opts.int8:
            from svg_export.quantize import quantize_bundle

            quantize_bundle(model, staging, manifest, opts.opset, frames, user_frames=opts.calibration is not None)
            stages.finished("int8")
        if trt_info is not None:
            from svg_export.trt import build_engines

            manifest["tensorrt"] = build_engines(staging, manifest, trt_info, opts.opt_batch, opts.max_batch)
            stages.finished("tensorrt")
        manifest["export"]["seconds"] = round(time.perf_counter() - start, 2)
        validate_manifest(manifest)
        atomic_write_text(staging / MANIFEST_NAME, _json(manifest))
        replace_dir(staging, out)  # an old bundle (--force) is swapped out, then deleted
        stages.finished("written")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("exported %s to %s in %.1f s", ckpt_path, out, manifest["export"]["seconds"])
    return manifest


def _check_target(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not force:
        raise SVGError(f"{out} already exists: pass --force to replace it, or choose another --out")
    if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_NAME).exists()):
        raise SVGError(f"{out} exists and is not a bundle; refusing to replace it even with --force")


def _build(model: SVG, opts: ExportOptions, staging: Path, ckpt_path: Path, step: int,
           stages: _Stages) -> dict[str, Any]:
    """Export every graph into staging, check parity, and return the manifest (no TensorRT yet)."""
    spec = model_spec(model)
    exported = export_model(model, fp16=opts.fp16)
    model64 = copy.deepcopy(model).double()  # PyTorch's own rounding, for the parity rule (verify.RULE)
    graphs, errors, exporters = {}, {}, set()
    for graph in spec.graphs():
        cell = Cell(exported, spec, graph)
        path = staging / f"{graph}.onnx"
        exporters.add(export_cell(cell, verify.example_inputs(cell.io, spec=spec), path, opts.opset))
        graphs[graph] = {"file": path.name, "sha256": sha256_file(path),
                         "inputs": [t.to_json() for t in cell.io.inputs],
                         "outputs": [t.to_json() for t in cell.io.outputs]}
        errors[graph] = verify.graph_error(Cell(model, spec, graph), path, reference64=Cell(model64, spec, graph))
        log.info("exported %s: max abs err %.2e", graph, errors[graph]["max_abs_err"])
        stages.finished(graph)
    manifest = _manifest(model, spec, opts, graphs, ckpt_path, step, exporters)
    rollout = verify.rollout_error(model, staging, manifest, model64=model64)
    stages.finished("rollout check")
    manifest["parity"] = parity = {"tolerance": TOLERANCE[opts.precision], "rule": verify.RULE,
                                   "batch_sizes": list(verify.BATCH_SIZES), "graphs": errors,
                                   "rollout": rollout, "passed": False}
    bad = verify.failures(parity)
    if bad:
        raise SVGError(f"exported graphs do not match PyTorch within {parity['tolerance']:g} ({opts.precision}): "
                       f"{'; '.join(bad)}. Nothing was written; report this with the checkpoint's config")
    parity["passed"] = True
    return manifest


def _manifest(model: SVG, spec: ModelSpec, opts: ExportOptions, graphs: dict, ckpt_path: Path, step: int,
              exporters: set[str]) -> dict[str, Any]:
    import onnx
    import onnxruntime
    import onnxscript

    cfg = model.cfg
    model_fields = ("kind", "backbone", "image_size", "channels", "width", "g_dim", "z_dim", "rnn_size",
                    "posterior_layers", "prior_layers", "predictor_layers", "last_frame_skip", "action_dim",
                    "action_prior", "action_mean", "action_std", "action_names")
    return {
        "format": FORMAT, "schema_version": SCHEMA_VERSION,
        "model": {k: list(v) if isinstance(v := getattr(cfg, k), tuple) else v for k in model_fields},
        "skips": [list(s) for s in spec.skips],
        "precision": opts.precision,
        "graphs": graphs,
        "checkpoint": {"path": str(ckpt_path.resolve()), "sha256": sha256_file(ckpt_path), "step": step},
        "export": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": 0.0,
                   "exporter": "torchscript" if "torchscript" in exporters else "dynamo", "opset": opts.opset},
        "versions": {"svg_video": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxscript": onnxscript.__version__, "onnxruntime": onnxruntime.__version__,
                     "python": platform.python_version()},
        "tensorrt": None,
    }


def _json(manifest: dict[str, Any]) -> str:
    import json

    return json.dumps(manifest, indent=2) + "\n"
