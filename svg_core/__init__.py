"""svg_core: the PyTorch side of svg-video (models, data, training, evaluation)."""

from svg_runtime.version import __version__

__all__ = ["__version__"]
