"""`svg export --int8`: int8 convolutions for onnxruntime on the CPU, checked by rollout SSIM.

The graphs run at every sampled frame (step, and decoder for per-cell use) are re-exported with the transposed
convolutions rewritten as plain ones (svg_export.phase_conv; onnxruntime's CPU provider quantizes
Conv but not ConvTranspose) and their convolutions quantized statically in QDQ form: per-channel
symmetric int8 weights, uint8 inputs with MinMax ranges calibrated on rollouts of the model
itself: the u8 x s8 product that VNNI / AMX run. What stays fp32, because it costs accuracy more
than it saves time (measured on a trained SM-MNIST model, 5 -> 20 rollouts): the first encoder
convolution and the decoder's last layer (they read and write the frame: 1 channel, <2% of the
FLOPs), the skip concatenations (one uint8 scale for [features, skip] cost 0.005 SSIM), the LSTM cells
(1% of the FLOPs, recurrent), and the encoder graph, which observe() runs once per context: its
error reaches every sample's LSTM state (mean SSIM 0.990 instead of 0.996). Graph inputs and
outputs stay fp32: the runtime needs no change.

Calibration frames: a user's own (`calibration`, (N, T, C, H, W)) or, by default, half uniform
noise and half sparse bright rectangles on black (like moving digits), plus the frames the model
generates from them. The bundle passes when the SSIM of the first predicted frame (int8 onnxruntime
against fp32 PyTorch, same observed state, same eps) on frames held out from calibration is
>= SSIM_THRESHOLD. The whole 5 -> 20 rollout's SSIM is recorded but not gated: a trained stochastic
model amplifies any perturbation along a rollout (fp32 against fp64 PyTorch already differs by 2e-4
after 20 steps), so the same eps leads int8 and fp32 to different, equally good futures. Measured on
the 40-minute `smmnist-small` model (scripts/int8_probe.py, 32 test videos, 10 samples): first-step
SSIM 0.995, step 20 0.79, yet best-of-10 SSIM against the true future 0.742 (int8) vs 0.747 (fp32)
and PSNR 16.60 vs 16.63 dB; on a paper-width model (600 x 16) first-step SSIM 0.9998, step 20 0.90,
best-of-5 SSIM 0.635 vs 0.638.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from svg_core import sampling
from svg_core.errors import SVGError
from svg_core.evaluation.metrics import ssim
from svg_core.model import SVG
from svg_export import verify
from svg_export.cells import Cell, export_model, model_spec
from svg_export.onnx_export import check_graph, export_cell
from svg_export.phase_conv import phase_model
from svg_runtime.backends import OrtBackend
from svg_runtime.hashing import sha256_file
from svg_runtime.manifest import ACTION, ModelSpec, graph_io
from svg_runtime.predictor import Predictor

log = logging.getLogger("svg")
QUANTIZED_GRAPHS = ("decoder", "step")  # per-step graphs with convolutions; see the module docstring
FRAME_INPUTS = ("x", "x_prev")
SSIM_THRESHOLD = 0.99
CALIBRATION = {"videos": 8, "context": 5, "horizon": 10, "n_samples": 2}
CHECK = {"videos": 8, "context": 5, "horizon": 20, "n_samples": 3}
SCHEME = ("QDQ static: convolutions with per-channel symmetric int8 weights and per-tensor uint8 inputs "
          "(MinMax on calibration rollouts), transposed ones as phase convolutions + DepthToSpace; fp32: the first "
          "encoder convolution and the last decoder layer (they read and write the frame), concatenations, LSTMs, "
          "the encoder graph (observe)")


def synthetic_frames(n: int, t: int, frame_shape: tuple[int, ...], seed: int) -> np.ndarray:
    """(n, t, C, H, W) float32 in [0, 1]: the first half uniform noise, the rest 1-3 bright
    rectangles on black that drift between frames."""
    rng = np.random.default_rng(seed)
    c, h, w = frame_shape
    out = rng.random((n, t, c, h, w), dtype=np.float32)
    for i in range(n // 2, n):
        out[i] = 0.0
        for _ in range(rng.integers(1, 4)):
            rh, rw = rng.integers(h // 8, h // 3 + 1), rng.integers(w // 8, w // 3 + 1)
            y, x = rng.integers(0, h - rh), rng.integers(0, w - rw)
            dy, dx = rng.integers(-3, 4, size=2)
            for f in range(t):
                yy, xx = int(np.clip(y + f * dy, 0, h - rh)), int(np.clip(x + f * dx, 0, w - rw))
                out[i, f, :, yy:yy + rh, xx:xx + rw] = rng.uniform(0.6, 1.0)
    return out


def _step_feeds(io_names: list[str], state: sampling.State, eps: torch.Tensor | None,
                action: torch.Tensor | None) -> dict[str, np.ndarray]:
    """A step graph's inputs, by name (graph_io), from a PyTorch rollout state."""
    named = {**state.to_named(), "eps": eps, ACTION: action}
    return {name: named[name].numpy().copy() for name in io_names}


def calibration_feeds(model: SVG, spec: ModelSpec, context: np.ndarray, seed: int = 0) -> dict[str, list[dict]]:
    """Inputs of the decoder and step graphs met while rolling the model forward (PyTorch, fp32)
    from the contexts (N, T, C, H, W): one feed dict per call."""
    feeds: dict[str, list[dict]] = {g: [] for g in QUANTIZED_GRAPHS}
    decoder_names = graph_io(spec, "decoder").input_names
    step_names = graph_io(spec, "step").input_names

    def grab_decoder(_module: torch.nn.Module, args: tuple) -> None:
        g, skips = args
        feeds["decoder"].append(dict(zip(decoder_names, [t.numpy().copy() for t in (g, *skips)], strict=True)))

    gen = torch.Generator().manual_seed(seed)
    n_samples, horizon = CALIBRATION["n_samples"], CALIBRATION["horizon"]
    handle = model.decoder.register_forward_pre_hook(grab_decoder)
    try:
        with sampling.eval_mode(model):
            ctx = torch.from_numpy(context)
            ctx_actions = _actions((len(ctx), ctx.shape[1] - 1), gen, spec)
            state = sampling.fork(sampling.observe(model, ctx, ctx_actions), n_samples)
            for _ in range(horizon):
                eps = torch.randn(state.batch, spec.z_dim, generator=gen) if spec.has_latent else None
                action = _actions((state.batch,), gen, spec)
                feeds["step"].append(_step_feeds(step_names, state, eps, action))
                _, _, _, state = sampling.step(model, state, eps, action)
    finally:
        handle.remove()
    return feeds


def _actions(lead: tuple[int, ...], gen: torch.Generator, spec: ModelSpec) -> torch.Tensor | None:
    """Random actions (*lead, A) spread as the training data's, or None for an unconditional model."""
    return verify.random_actions((*lead, spec.action_dim), gen, spec) if spec.has_actions else None


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _not_preprocessing_advice(record: logging.LogRecord) -> bool:
    # onnxruntime.quantization warns on the root logger that shape inference could run first:
    # our graphs carry every shape already (the dynamo exporter writes them)
    return not record.getMessage().startswith("Please consider")


def frame_convs(path: Path) -> list[str]:
    """The Conv nodes that read a frame input (x, x_prev) of the graph."""
    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv" and n.input[0] in FRAME_INPUTS]


def quantize_graph(src: Path, dst: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    """Static QDQ quantization of src's convolutions (weights int8 per channel, activations uint8),
    but those reading the frame: see the module docstring."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    root = logging.getLogger()
    root.addFilter(_not_preprocessing_advice)
    try:
        quantize_static(str(src), str(dst), _Reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=frame_convs(src), calibrate_method=CalibrationMethod.MinMax)
    finally:
        root.removeFilter(_not_preprocessing_advice)


def rollout_check(model: SVG, bundle: Path, manifest: dict[str, Any], context: np.ndarray, seed: int = 1) -> dict:
    """SSIM and abs error of the int8 bundle's rollout (onnxruntime Predictor) against fp32 PyTorch
    (svg_core.sampling.generate) from context (B, T, C, H, W), with the same eps."""
    spec = ModelSpec.from_manifest(manifest)
    b, n, h = context.shape[0], CHECK["n_samples"], CHECK["horizon"]
    gen = torch.Generator().manual_seed(seed)
    ctx_actions, actions = _actions((b, context.shape[1] - 1), gen, spec), _actions((b, 1, h), gen, spec)
    lead = (b, n) if actions is None else (b, 1, n)
    eps = np.random.default_rng(seed).standard_normal((*lead, h, spec.latent_dim), dtype=np.float32)
    predictor = Predictor(bundle, manifest, OrtBackend(bundle, manifest, spec))
    as_np = (lambda a: None if a is None else a.numpy())  # noqa: E731
    state = predictor.observe(context, actions=as_np(ctx_actions))
    got = predictor.sample(state, n_samples=n, horizon=h, eps=eps, actions=as_np(actions)).frames
    got = got.reshape(b, n, *got.shape[-4:])
    want = sampling.generate(model, torch.from_numpy(context), h, n, eps=torch.from_numpy(eps),
                             context_actions=ctx_actions, actions=actions).frames.reshape(got.shape)
    per_frame = ssim(torch.from_numpy(got), want)  # (B, N, horizon)
    diff = np.abs(got - want.numpy())
    return {"context": int(context.shape[1]), "horizon": h, "n_samples": n, "videos": b,
            "ssim_first_step": float(per_frame[..., 0].mean()),
            "ssim_mean": float(per_frame.mean()), "ssim_min": float(per_frame.min()),
            "ssim_last_step": float(per_frame[..., -1].mean()),
            "ssim_per_step": [round(float(v), 4) for v in per_frame.mean(dim=(0, 1))],
            "max_abs_err": float(diff.max()), "mean_abs_err": float(diff.mean())}


def split_frames(calibration: np.ndarray | None, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(calibration contexts, held-out check contexts), float32 in [0, 1], from the user's frames
    (N, T, C, H, W) or synthetic ones; raises SVGError for frames that do not fit the model."""
    k = CALIBRATION["context"]
    if calibration is None:
        frame = spec.frame_shape
        return (synthetic_frames(CALIBRATION["videos"], k, frame, seed=0),
                synthetic_frames(CHECK["videos"], CHECK["context"], frame, seed=1))
    arr = np.asarray(calibration)
    if arr.ndim != 5 or arr.shape[2:] != spec.frame_shape or arr.shape[1] < 2 or arr.shape[0] < 2:
        raise SVGError(f"calibration frames must be (N >= 2, T >= 2, C, H, W) with frames {spec.frame_shape}, "
                       f"got {arr.shape}")
    arr = arr.astype(np.float32) / 255 if arr.dtype == np.uint8 else arr.astype(np.float32)
    if arr.min() < 0 or arr.max() > 1:
        raise SVGError("calibration frames must be uint8 or float in [0, 1]")
    n_check = max(1, min(16, arr.shape[0] // 4))
    t = min(arr.shape[1], k)
    return np.ascontiguousarray(arr[n_check:, :t]), np.ascontiguousarray(arr[:n_check, :t])


def quantize_bundle(model: SVG, staging: Path, manifest: dict[str, Any], opset: int,
                    frames: tuple[np.ndarray, np.ndarray] | None = None, user_frames: bool = False) -> dict[str, Any]:
    """Replace staging's decoder and step graphs by int8 ones and record the check in the
    manifest (precision "int8", "quantization"); raises SVGError when the rollout SSIM is too low.

    frames: (calibration, check) contexts from split_frames (default: synthetic)."""
    spec = model_spec(model)
    calib, check = frames if frames is not None else split_frames(None, spec)
    feeds = calibration_feeds(model, spec, calib)
    fast = phase_model(export_model(model), keep_out_channels=spec.channels)
    rewrite_errors = {}
    for graph in QUANTIZED_GRAPHS:
        cell, fp32_path, path = Cell(fast, spec, graph), staging / f".{graph}.fp32.onnx", staging / f"{graph}.onnx"
        try:
            export_cell(cell, verify.example_inputs(cell.io, spec=spec), fp32_path, opset)
            err = verify.graph_error(Cell(model, spec, graph), fp32_path)
            if err["max_abs_err"] > 1e-4 * max(1.0, err["scale"]):
                raise SVGError(f"the phase-convolution form of {graph} differs from PyTorch by {err['max_abs_err']:.3g}; "
                               "export without --int8 and report this with the checkpoint's config")
            rewrite_errors[graph] = err
            quantize_graph(fp32_path, path, feeds[graph])
        finally:
            fp32_path.unlink(missing_ok=True)
        check_graph(path, cell.io)
        manifest["graphs"][graph]["sha256"] = sha256_file(path)
        log.info("quantized %s (%d calibration batches)", graph, len(feeds[graph]))
    rollout = rollout_check(model, staging, manifest, check)
    manifest["precision"] = "int8"
    manifest["quantization"] = {
        "scheme": SCHEME, "graphs": list(QUANTIZED_GRAPHS), "ssim_threshold": SSIM_THRESHOLD,
        "calibration": {"source": "user" if user_frames else "synthetic", "videos": int(calib.shape[0]),
                        "context": int(calib.shape[1]), "horizon": CALIBRATION["horizon"],
                        "n_samples": CALIBRATION["n_samples"]},
        "phase_conv_max_abs_err": max(e["max_abs_err"] for e in rewrite_errors.values()),
        "gate": "ssim_first_step", "rollout": rollout, "passed": rollout["ssim_first_step"] >= SSIM_THRESHOLD,
    }
    if not manifest["quantization"]["passed"]:
        raise SVGError(f"int8 first predicted frame's SSIM against fp32 PyTorch is {rollout['ssim_first_step']:.4f} < "
                       f"{SSIM_THRESHOLD}: export without --int8, or calibrate on real frames (--calibration FRAMES.npy)")
    return manifest


def load_calibration(path: Path | None) -> np.ndarray | None:
    """Frames (N, T, C, H, W) from a .npy file (no pickles), or None."""
    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SVGError(f"cannot read calibration frames from {path} ({e}): save a (N, T, C, H, W) uint8 or "
                       "float array with numpy.save") from e
