"""What the inference benchmark times: one rollout engine per backend behind one small interface.

Every runner conditions on a context (B, T, C, H, W) float32 frames, forks it into n samples and
then predicts one frame per `step(eps)` (eps (B * n, z_dim)), keeping its own state:

- torch: svg_core.sampling on the PyTorch model, under inference_mode (the eager baseline);
- ort: the runtime's Predictor (onnxruntime, the fused step graph) on the CPU or CUDA;
- ort-cells: the per-cell graphs chained with session.run (encoder -> prior -> predictor -> decoder);
- trt: the Predictor's TensorRT backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from svg_core import sampling
from svg_core.model import SVG
from svg_runtime.backends import graph_file
from svg_runtime.errors import SVGRuntimeError
from svg_runtime.manifest import ModelSpec, feedback, graph_io, is_skip, read_manifest
from svg_runtime.predictor import Predictor


class Runner(Protocol):
    name: str

    def start(self, context: np.ndarray, n_samples: int = 1) -> None:
        """Condition on context (B, T, C, H, W) and fork into B * n_samples rollouts."""

    def step(self, eps: np.ndarray | None) -> None:
        """Predict the next frame of every rollout (eps (B * n, z_dim), None without latent)."""


class TorchRunner:
    """PyTorch eager, inference_mode, on torch's current threads."""

    name = "torch"

    def __init__(self, model: SVG):
        self.model = model.eval()
        self.state: sampling.State | None = None

    def start(self, context: np.ndarray, n_samples: int = 1) -> None:
        with torch.inference_mode():
            self.state = sampling.fork(sampling.observe(self.model, torch.from_numpy(context)), n_samples)

    def step(self, eps: np.ndarray | None) -> None:
        with torch.inference_mode():
            _, _, _, self.state = sampling.step(self.model, self.state, None if eps is None else torch.from_numpy(eps))


class FusedRunner:
    """The runtime's Predictor: one fused step graph per frame."""

    def __init__(self, predictor: Predictor, name: str):
        self.predictor, self.name = predictor, name
        self.state = None

    def start(self, context: np.ndarray, n_samples: int = 1) -> None:
        state = self.predictor.observe(context)
        self.state = self.predictor.fork(state, n_samples) if n_samples > 1 else state

    def step(self, eps: np.ndarray | None) -> None:
        self.predictor.step(self.state, eps)


class CellRunner:
    """The per-cell graphs chained by hand, each with session.run: what a user of the bundle gets
    without the fused step graph. Conditioning uses the runtime's observe."""

    def __init__(self, bundle: Path, threads: int | None = None, name: str = "ort-cells"):
        import onnxruntime as ort

        self.name = name
        manifest = read_manifest(bundle)
        self.spec = ModelSpec.from_manifest(manifest)
        if self.spec.has_actions:
            raise SVGRuntimeError("the per-cell benchmark runner covers unconditional bundles only")
        self.predictor = Predictor.load(bundle, backend="ort", threads=threads)
        opts = self.predictor.backend.session_options()
        graphs = ["encoder", "predictor", "decoder"] + (["prior"] if self.spec.has_prior else [])
        self.sessions = {g: ort.InferenceSession(str(graph_file(bundle, manifest, g)), sess_options=opts,
                                                 providers=["CPUExecutionProvider"]) for g in graphs}
        self.io = {g: graph_io(self.spec, g) for g in graphs}
        self.tensors: dict[str, np.ndarray] = {}

    def start(self, context: np.ndarray, n_samples: int = 1) -> None:
        state = self.predictor.observe(context)
        self.tensors = {k: np.repeat(v, n_samples, axis=0) for k, v in state.tensors().items()}

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.io[graph].output_names
        return dict(zip(names, self.sessions[graph].run(names, feeds), strict=True))

    def _feeds(self, graph: str, available: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: available[name] for name in self.io[graph].input_names}

    def step(self, eps: np.ndarray | None) -> None:
        t, spec = self.tensors, self.spec
        enc = self._run("encoder", {"x": t["x_prev"]})
        available = {**t, "h": enc["h"], "eps": eps}
        if spec.last_frame_skip:  # the decoder reads the skips of the frame just encoded
            available.update({k: v for k, v in enc.items() if is_skip(k)})
        z = eps  # FP: z = eps
        if spec.has_prior:
            prior = self._run("prior", self._feeds("prior", available))
            t.update({feedback(k): v for k, v in prior.items() if feedback(k)})
            z = prior["z"]
        available["input"] = np.concatenate([enc["h"], z], axis=1) if spec.has_latent else enc["h"]
        pred = self._run("predictor", self._feeds("predictor", available))
        t.update({feedback(k): v for k, v in pred.items() if feedback(k)})
        t["x_prev"] = self._run("decoder", self._feeds("decoder", {**available, "g": pred["g"]}))["x"]


def make_runners(bundle: Path, model: SVG | None, threads: int | None = None, label: str = "",
                 cells: bool = True) -> tuple[list[Runner], list[dict[str, str]]]:
    """The runners available for a bundle on this machine, and the ones skipped with the reason."""
    import onnxruntime as ort

    runners: list[Runner] = []
    skipped: list[dict[str, str]] = []
    if model is not None:
        runners.append(TorchRunner(model))
    suffix = f" ({label})" if label else ""
    runners.append(FusedRunner(Predictor.load(bundle, backend="ort", threads=threads), f"ort{suffix}"))
    if cells:
        runners.append(CellRunner(bundle, threads, f"ort-cells{suffix}"))
    if "CUDAExecutionProvider" in ort.get_available_providers():
        try:
            runners.append(FusedRunner(Predictor.load(bundle, backend="ort", device="cuda"), f"ort-cuda{suffix}"))
        except Exception as e:  # no GPU behind the provider: reported, not fatal
            skipped.append({"backend": f"ort-cuda{suffix}", "reason": str(e).splitlines()[0]})
    else:
        skipped.append({"backend": f"ort-cuda{suffix}", "reason": "onnxruntime has no CUDA provider (CPU package)"})
    if not read_manifest(bundle).get("tensorrt"):
        skipped.append({"backend": f"trt{suffix}", "reason": "bundle has no TensorRT engines (svg export --trt)"})
    else:
        try:
            runners.append(FusedRunner(Predictor.load(bundle, backend="trt", device="cuda"), f"trt{suffix}"))
        except Exception as e:
            skipped.append({"backend": f"trt{suffix}", "reason": str(e).splitlines()[0]})
    return runners, skipped
