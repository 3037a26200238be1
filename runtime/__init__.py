"""svg_runtime: run exported SVG bundles with onnxruntime or TensorRT, without torch.

    from svg_runtime import Predictor
    p = Predictor.load("bundles/smmnist")
    out = p.sample(p.observe(context), n_samples=10, horizon=20, seed=0)

The runtime is also the project's base layer (docs/design.md): it imports nothing else of ours, and
its small helper modules are what every other package may import: errors, version, atomic (atomic
writes, .npz, directory swap), hashing (sha256_file), kinds (ModelKind) and manifest (the bundle
contract).
"""

from svg_runtime.errors import SVGRuntimeError
from svg_runtime.predictor import Predictor, Rollout, State, StepOutput
from svg_runtime.version import __version__

__all__ = ["Predictor", "Rollout", "SVGRuntimeError", "State", "StepOutput", "__version__"]
