"""Export one cell to ONNX with a dynamic batch axis, and check the bundle rules on the result."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from pathlib import Path

import onnx
import torch

from svg_core.errors import SVGError
from svg_export.cells import Cell
from svg_runtime.manifest import BATCH_AXIS, GraphIO

log = logging.getLogger("svg")
MAX_OPSET = 20  # TensorRT 10's ONNX parser
FORBIDDEN_OPS = ("BatchNormalization", "RandomNormal", "RandomNormalLike", "RandomUniform",
                 "RandomUniformLike", "Multinomial", "Bernoulli", "LSTM", "Loop", "Scan")


def export_cell(cell: Cell, example: tuple[torch.Tensor, ...], path: Path, opset: int = MAX_OPSET) -> str:
    """Write cell to path (weights inside the file); returns the exporter used (dynamo or torchscript).

    The example batch must be >= 2: a batch-1 example lets torch.export specialise the batch."""
    assert all(t.shape[0] >= 2 for t in example), "export with batch >= 2 or the batch axis becomes static"
    io_ = cell.io
    batch = torch.export.Dim(BATCH_AXIS, min=1, max=1 << 20)
    try:
        with _quiet():
            torch.onnx.export(cell, example, str(path), dynamo=True, input_names=io_.input_names,
                              output_names=io_.output_names, dynamic_shapes=(tuple({0: batch} for _ in example),),
                              opset_version=opset, external_data=False, optimize=True, verbose=False)
        exporter = "dynamo"
    except Exception as e:  # the dynamo exporter fails in many ways; the TorchScript one is the fallback
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()[0]
        log.warning("dynamo export of %s failed (%s); falling back to the TorchScript exporter", cell.graph, reason)
        with _quiet():
            torch.onnx.export(cell, example, str(path), dynamo=False, input_names=io_.input_names,
                              output_names=io_.output_names, opset_version=opset,
                              dynamic_axes={n: {0: BATCH_AXIS} for n in io_.input_names + io_.output_names})
        _declare_shapes(path, io_)
        exporter = "torchscript"
    check_graph(path, io_)
    return exporter


def _declare_shapes(path: Path, io_: GraphIO) -> None:
    """Write the known static dims into the graph's inputs and outputs (the TorchScript exporter
    leaves some symbolic; parity runs then check the real shapes)."""
    model = onnx.load(str(path))
    for values, specs in ((model.graph.input, io_.inputs), (model.graph.output, io_.outputs)):
        for value, spec in zip(values, specs, strict=True):
            for dim, size in zip(value.type.tensor_type.shape.dim[1:], spec.shape, strict=True):
                dim.Clear()
                dim.dim_value = size
    onnx.save(model, str(path))


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and warn about things that do not concern our graphs."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]


def graph_violations(model: onnx.ModelProto, io_: GraphIO) -> list[str]:
    """Every way a graph breaks the bundle rules (docs/design.md, the bundle contract); empty when it is fine."""
    problems = []
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset > MAX_OPSET:
        problems.append(f"opset {opset} > {MAX_OPSET}")
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    bad = sorted({n.op_type for n in nodes if n.op_type in FORBIDDEN_OPS})
    if bad:
        problems.append(f"forbidden ops {bad}")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        problems.append("weights in external data")
    graph = model.graph
    for kind, values, expected in (("input", graph.input, io_.inputs), ("output", graph.output, io_.outputs)):
        got = [(v.name, _shape(v)) for v in values]
        want = [(t.name, [BATCH_AXIS, *t.shape]) for t in expected]
        if got != want:
            problems.append(f"{kind}s {got} != expected {want}")
    return problems


def check_graph(path: Path, io_: GraphIO) -> None:
    """onnx.checker plus the bundle rules: symbolic batch axis 0 on every input and output,
    no BatchNormalization / Random* / LSTM-loop ops, weights inside, opset <= 20."""
    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise SVGError(f"exported {path.name} fails the ONNX checker: {e}") from e
    problems = graph_violations(model, io_)
    if problems:
        raise SVGError(f"exported {path.name} breaks the bundle rules: {'; '.join(problems)}")
