"""The project's error type, shared with the torch-free runtime."""

from svg_runtime.errors import SVGError

__all__ = ["SVGError"]
