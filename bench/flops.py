"""FLOPs counted, not guessed: from an ONNX graph's shapes, or by PyTorch's FlopCounterMode; and
this machine's matmul peak, measured.

A multiply-add counts as 2 FLOPs. The ONNX count fixes the symbolic batch axis, runs ONNX shape
inference and sums Conv, ConvTranspose, Gemm and MatMul (and their integer/quantized forms) over
the graph; element-wise ops are not counted (as FlopCounterMode does not count them either).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import shape_inference

MATMUL_OPS = ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul")
CONV_OPS = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}  # op -> index of its weight input


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    graph, shapes = model.graph, {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _fix_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy with every symbolic input dimension set to batch (only axis 0 is symbolic in a bundle)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in (*model.graph.input, *model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.Clear()
                dim.dim_value = batch
    del model.graph.value_info[:]  # recomputed with the fixed batch
    return model


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int:
    def shape(i: int, outputs: bool = False) -> list[int]:
        name = (node.output if outputs else node.input)[i]
        if name not in shapes:
            raise ValueError(f"ONNX shape inference left the shape of {name!r} ({node.op_type}) unknown")
        return shapes[name]

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type in CONV_OPS:  # out (N, M, *spatial), weight (M, C/group, *k)
        out, w = shape(0, outputs=True), shape(CONV_OPS[node.op_type])
        return math.prod(out) * math.prod(w[1:])
    if node.op_type == "ConvTranspose":  # in (N, C, *spatial), weight (C, M/group, *k)
        x, w = shape(0), shape(1)
        return math.prod(x) * math.prod(w[1:])
    if node.op_type in MATMUL_OPS:
        a_idx = 0
        a = shape(a_idx)
        k = a[-2] if (node.op_type == "Gemm" and attrs.get("transA", 0)) else a[-1]
        return math.prod(shape(0, outputs=True)) * k
    return 0


def onnx_flops(path: str | Path, batch: int) -> dict[str, int]:
    """FLOPs of one run of an ONNX graph at a batch size, by op type (2 per multiply-add)."""
    model = shape_inference.infer_shapes(_fix_batch(onnx.load(str(path)), batch), strict_mode=True, data_prop=True)
    shapes = _shapes(model)
    by_op: dict[str, int] = {}
    for node in model.graph.node:
        macs = _node_macs(node, shapes)
        if macs:
            by_op[node.op_type] = by_op.get(node.op_type, 0) + 2 * macs
    return by_op


def torch_flops(fn, *args) -> int:
    """FLOPs of fn(*args) as counted by torch.utils.flop_counter.FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops())


def _median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n^3 torch matmul in dtype on torch's current threads (median of repeats)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    with torch.inference_mode():
        return 2 * n ** 3 / _median_seconds(lambda: a @ b, repeats) / 1e9


def ort_matmul_peak(dtype: str = "float32", threads: int | None = None, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s (GOP/s) of an n^3 matmul in onnxruntime on the CPU: "float32" (MatMul, MLAS sgemm) or
    "int8" (uint8 x int8 MatMulInteger: VNNI / AMX when the CPU has them)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    int8 = dtype == "int8"
    op, (ta, tb, tc) = ("MatMulInteger", (TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32)) if int8 else \
        ("MatMul", (TensorProto.FLOAT,) * 3)
    graph = helper.make_graph([helper.make_node(op, ["A", "B"], ["C"])], "peak",
                              [helper.make_tensor_value_info("A", ta, [n, n]), helper.make_tensor_value_info("B", tb, [n, n])],
                              [helper.make_tensor_value_info("C", tc, [n, n])])
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
                                opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if int8:
        feeds = {"A": rng.integers(0, 256, (n, n), dtype=np.uint8), "B": rng.integers(-128, 128, (n, n), dtype=np.int8)}
    else:
        feeds = {"A": rng.random((n, n), dtype=np.float32), "B": rng.random((n, n), dtype=np.float32)}
    return 2 * n ** 3 / _median_seconds(lambda: sess.run(None, feeds), repeats) / 1e9
