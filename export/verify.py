"""Self-verification of a bundle: PyTorch and onnxruntime on the same inputs, per graph and over a
whole rollout run by the torch-free Predictor."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from svg_core import sampling
from svg_core.model import SVG
from svg_export.cells import Cell
from svg_runtime.backends import OrtBackend
from svg_runtime.manifest import ACTION, GraphIO, ModelSpec, is_skip, lstm_part
from svg_runtime.predictor import Predictor

BATCH_SIZES = (2, 5)
ROLLOUT = {"context": 5, "horizon": 20, "n_samples": 3, "batch": 2, "sequences": 2}
ROUNDING_FACTOR = 4.0
RULE = ("per graph: max abs err over all outputs and batch sizes <= tolerance * max(1, max |PyTorch output|); "
        "rollout (random context, fixed eps, onnxruntime Predictor vs svg_core.sampling.generate): frames "
        "(pixels in [0, 1]) <= tolerance, LP prior mu/logvar <= tolerance * max(1, their max |value|). "
        f"Either passes too when within {ROUNDING_FACTOR:g}x PyTorch's own fp32 rounding (its fp32 vs fp64 "
        "difference on the same inputs, 'rounding'): a trained model's rollout from a noise context can "
        "amplify rounding past the tolerance in PyTorch itself. fp16 bundles: tolerance 1e-2 = 2.5 grey levels of 255")


def random_inputs(io_: GraphIO, batch: int, gen: torch.Generator, spec: ModelSpec | None = None
                  ) -> tuple[torch.Tensor, ...]:
    """Inputs in each tensor's natural range: frames in [0, 1], codes in [-1, 1], eps ~ N(0, 1),
    actions ~ N(mean, std) of the model's action statistics (spec; else N(0, 1))."""
    out = []
    for t in io_.inputs:
        shape = (batch, *t.shape)
        if t.name in ("x", "x_prev") or is_skip(t.name):
            out.append(torch.rand(shape, generator=gen))
        elif t.name == ACTION:
            out.append(random_actions(shape, gen, spec))
        elif t.name == "eps" or lstm_part(t.name) is not None:
            out.append(torch.randn(shape, generator=gen))
        else:
            out.append(torch.rand(shape, generator=gen) * 2 - 1)
    return tuple(out)


def random_actions(shape: tuple[int, ...], gen: torch.Generator, spec: ModelSpec | None) -> torch.Tensor:
    """Actions (..., A) in the user's units, spread as the training data's (its mean and std)."""
    a = torch.randn(shape, generator=gen)
    if spec is not None and spec.action_mean:
        a = a * torch.tensor(spec.action_std) + torch.tensor(spec.action_mean)
    return a


def example_inputs(io_: GraphIO, batch: int = 2, spec: ModelSpec | None = None) -> tuple[torch.Tensor, ...]:
    return random_inputs(io_, batch, torch.Generator().manual_seed(0), spec)


def graph_error(reference: Cell, path: Path, batch_sizes=BATCH_SIZES, seed: int = 0,
                reference64: Cell | None = None) -> dict[str, float]:
    """Max abs difference between the PyTorch cell and the ONNX graph over all outputs and batch
    sizes, the largest reference magnitude (the scale the tolerance applies to) and PyTorch's own
    rounding (max abs difference of the fp32 cell and its fp64 copy on the same inputs;
    reference64: that copy, made here when not given)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    reference64 = reference64 if reference64 is not None else copy.deepcopy(reference).double()
    err = scale = rounding = 0.0
    for batch in batch_sizes:
        inputs = random_inputs(reference.io, batch, gen, reference.spec)
        with torch.inference_mode():
            want = reference(*inputs)
            want64 = reference64(*(t.double() for t in inputs))
        got = sess.run(None, {n: t.numpy() for n, t in zip(reference.io.input_names, inputs, strict=True)})
        for w, w64, g in zip(want, want64, got, strict=True):
            assert g.shape == tuple(w.shape), f"{path.name}: output shape {g.shape} != PyTorch's {tuple(w.shape)}"
            # np.max keeps NaN where Python's max(0.0, nan) would drop it: a NaN must fail the check
            err = float(np.max([err, np.abs(w.numpy() - g).max()]))
            scale = float(np.max([scale, np.abs(w.numpy()).max()]))
            rounding = float(np.nanmax([rounding, (w.double() - w64).abs().max().item()]))
    return {"max_abs_err": err, "scale": scale, "rounding": rounding}


def rollout_error(model: SVG, bundle: Path, manifest: dict[str, Any], seed: int = 0,
                  model64: SVG | None = None) -> dict[str, Any]:
    """Predictor (onnxruntime) against svg_core.sampling on random context frames with the same
    eps (and, for an action-conditioned model, the same context actions and K candidate action
    sequences): max and mean abs difference of the frames, and for LP the max abs difference of
    the prior's mu and log-variance with their scale."""
    spec = ModelSpec.from_manifest(manifest)
    rng = np.random.default_rng(seed)
    b, k, h, n = ROLLOUT["batch"], ROLLOUT["context"], ROLLOUT["horizon"], ROLLOUT["n_samples"]
    context = rng.random((b, k, *spec.frame_shape), dtype=np.float32)
    gen = torch.Generator().manual_seed(seed)
    ctx_actions = actions = None
    lead: tuple[int, ...] = (b, n)
    if spec.has_actions:
        lead = (b, ROLLOUT["sequences"], n)
        ctx_actions = random_actions((b, k - 1, spec.action_dim), gen, spec).numpy()
        actions = random_actions((b, ROLLOUT["sequences"], h, spec.action_dim), gen, spec).numpy()
    eps = rng.standard_normal((*lead, h, spec.latent_dim), dtype=np.float32)
    predictor = Predictor(bundle, manifest, OrtBackend(bundle, manifest, spec, threads=1))
    got = predictor.sample(predictor.observe(context, actions=ctx_actions), n_samples=n, horizon=h, eps=eps,
                           actions=actions)
    def reference(m: SVG, dtype: torch.dtype) -> sampling.Rollout:
        as_t = (lambda a: None if a is None else torch.from_numpy(a).to(dtype))  # noqa: E731
        return sampling.generate(m, as_t(context), h, n, eps=as_t(eps), context_actions=as_t(ctx_actions),
                                 actions=as_t(actions))

    model64 = model64 if model64 is not None else copy.deepcopy(model).double()
    want, want64 = reference(model, torch.float32), reference(model64, torch.float64)
    diff = np.abs(got.frames - want.frames.numpy())
    out = {**{key: ROLLOUT[key] for key in ("context", "horizon", "n_samples")},
           "max_abs_err": float(diff.max()), "mean_abs_err": float(diff.mean()),
           "rounding": float((want.frames.double() - want64.frames).abs().max())}
    if spec.has_actions:
        out["sequences"] = ROLLOUT["sequences"]
    if spec.has_prior:  # mu and logvar are not bounded like pixels: their error scales with them
        logvar = 2 * np.log(want.sigma.numpy())
        out["prior_max_abs_err"] = max(float(np.abs(got.mu - want.mu.numpy()).max()),
                                       float(np.abs(np.log(got.sigma) * 2 - logvar).max()))
        out["prior_scale"] = max(float(np.abs(want.mu.numpy()).max()), float(np.abs(logvar).max()))
        out["prior_rounding"] = max(float((want.mu.double() - want64.mu).abs().max()),
                                    float((want.sigma.double().log() - want64.sigma.log()).abs().max()) * 2)
    return out


def _within(err: float, tol: float, scale: float = 0.0, rounding: float = 0.0) -> bool:
    """err <= max(tol * max(1, scale), ROUNDING_FACTOR * rounding), False for a NaN or infinite err
    or scale (NaN compares False)."""
    limit = max(tol * max(1.0, scale), ROUNDING_FACTOR * rounding if math.isfinite(rounding) else 0.0)
    return math.isfinite(err) and math.isfinite(scale) and err <= limit


def failures(parity: dict[str, Any]) -> list[str]:
    """Graphs (and the rollout) whose error exceeds tolerance * max(1, output scale), or is not finite."""
    tol = parity["tolerance"]
    bad = [f"{g}: {e['max_abs_err']:.3g} (scale {e['scale']:.3g})" for g, e in parity["graphs"].items()
           if not _within(e["max_abs_err"], tol, e["scale"], e.get("rounding", 0.0))]
    roll = parity["rollout"]
    name = f"rollout {roll['context']} -> {roll['horizon']}"
    if not _within(roll["max_abs_err"], tol, 0.0, roll.get("rounding", 0.0)):
        bad.append(f"{name} frames: {roll['max_abs_err']:.3g}")
    if not _within(roll.get("prior_max_abs_err", 0.0), tol, roll.get("prior_scale", 0.0),
                   roll.get("prior_rounding", 0.0)):
        bad.append(f"{name} prior mu/logvar: {roll['prior_max_abs_err']:.3g} (scale {roll['prior_scale']:.3g})")
    return bad
