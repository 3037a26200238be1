"""svg_export: a checkpoint -> a bundle (ONNX graphs, manifest.json, optional TensorRT engines).

Needs torch (the `train` extra); the bundle it writes is run by svg_runtime, which does not.
Entry point: `svg_export.bundle.export_bundle(ExportOptions(...))`, or `svg export` on the CLI.
"""
