"""svg_runtime: run exported SVG bundles with onnxruntime or TensorRT, without torch.

    from svg_runtime import Predictor
    p = Predictor.load("bundles/smmnist")
    out = p.sample(p.observe(context), n_samples=10, horizon=20, seed=0)
"""

from svg_runtime.errors import SVGRuntimeError
from svg_runtime.predictor import Predictor, Rollout, State, StepOutput
from svg_runtime.version import __version__

__all__ = ["Predictor", "Rollout", "SVGRuntimeError", "State", "StepOutput", "__version__"]
