"""The project's error types, importable without torch (svg_core re-exports SVGError)."""


class SVGError(Exception):
    """A problem with the user's input, data, checkpoint or bundle; the message says the fix."""


class SVGRuntimeError(SVGError, ValueError):
    """A problem with a bundle or with the arrays given to the runtime; the message says the fix."""
