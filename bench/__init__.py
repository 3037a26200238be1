"""svg_bench: how fast the project runs, measured (not part of the training core or the runtime).

- `svg_bench.infer`: `svg bench BUNDLE`, the sampling step on every backend against PyTorch eager;
- `svg_bench.runners`: one rollout engine per backend behind one small interface;
- `svg_bench.train`: `svg bench --train`, the batched training step against a per-frame loop;
- `svg_bench.flops`: FLOPs counted on ONNX graphs and by FlopCounterMode, matmul peaks measured.

Layering (docs/design.md): cli -> bench -> {svg_core, svg_export, svg_runtime}; nothing imports bench
but the CLI, the tests and the benchmarks.
"""
