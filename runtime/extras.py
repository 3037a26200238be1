"""Which optional extra provides a missing module, and the one-line `pip install` that fixes it.

The base install (`pip install svg-video`) is the runtime and the CLI without torch and without an
onnxruntime: the user picks `[cpu]` (onnxruntime) or `[gpu]` (onnxruntime-gpu, TensorRT), never both,
because both packages provide the module `onnxruntime` and the CPU one hides the CUDA provider.
"""

from __future__ import annotations

from types import ModuleType

from svg_runtime.errors import SVGError

TRAIN = 'pip install "svg-video[train]"'
# top-level module -> (what needs it, the install that provides it)
EXTRA_OF_MODULE = {
    "torch": ("PyTorch", TRAIN),
    "onnx": ("onnx", TRAIN),
    "onnxscript": ("onnxscript", TRAIN),
    "safetensors": ("safetensors", TRAIN),
    "matplotlib": ("matplotlib", TRAIN),
    "google_crc32c": ("google-crc32c", TRAIN),
    "av": ("PyAV (video files)", 'pip install av (or "svg-video[train]")'),
    "onnxruntime": ("onnxruntime", 'pip install "svg-video[cpu]" (or "svg-video[gpu]" with CUDA; never both; '
                                   "Jetson: JetPack's onnxruntime-gpu wheel)"),
    "tensorrt": ("TensorRT", 'pip install "svg-video[gpu]" (Jetson: JetPack\'s TensorRT)'),
    "cuda": ("cuda-python", 'pip install "svg-video[gpu]"'),
}


class MissingExtraError(SVGError, ImportError):
    """An optional dependency is not installed; the message is the one line that installs it."""


def missing_extra_message(module: str | None, command: str = "this") -> str | None:
    """'this needs PyTorch: pip install "svg-video[train]"' for a known optional module, else None."""
    top = (module or "").partition(".")[0]
    if top not in EXTRA_OF_MODULE:
        return None
    what, install = EXTRA_OF_MODULE[top]
    return f"{command} needs {what}, which is not installed: {install}"


def import_onnxruntime() -> ModuleType:
    """The `onnxruntime` module, or MissingExtraError saying which extra to install."""
    try:
        import onnxruntime
    except ImportError as e:
        raise MissingExtraError(missing_extra_message("onnxruntime", "the runtime")) from e
    return onnxruntime
