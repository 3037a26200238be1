"""TensorRT engines for a bundle's runtime graphs (encoder, condition, step).

TensorRT 10 Python API: a STRONGLY_TYPED network (precision comes from the ONNX graph itself:
TensorRT 11 removed the FP16 builder flag, so fp16 lives in the graph, see --fp16), the ONNX
parser, one optimisation profile with min 1 / opt / max batch for every input, and one timing
cache shared by the builds and saved in the bundle.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from svg_core.errors import SVGError
from svg_runtime.hashing import sha256_file
from svg_runtime.manifest import RUNTIME_GRAPHS, GraphIO, ModelSpec, graph_io
from svg_runtime.trt_backend import gpu_name, import_tensorrt

log = logging.getLogger("svg")
TIMING_CACHE = "timing.cache"
WORKSPACE_BYTES = 4 << 30


def require_tensorrt() -> dict[str, str]:
    """TensorRT version and GPU name; raises SVGError saying what is missing (checked before any
    file is written)."""
    trt, cudart = import_tensorrt()
    return {"version": trt.__version__, "gpu": gpu_name(cudart)}


def build_engines(bundle: Path, manifest: dict[str, Any], info: dict[str, str], opt_batch: int,
                  max_batch: int) -> dict[str, Any]:
    """Build bundle/<graph>.plan for each runtime graph; returns the manifest's `tensorrt` entry."""
    trt, _ = import_tensorrt()
    spec = ModelSpec.from_manifest(manifest)
    logger = trt.Logger(trt.Logger.WARNING)
    cache = b""
    engines = {}
    for graph in RUNTIME_GRAPHS:
        plan = bundle / f"{graph}.plan"
        profiles, cache = build_engine(trt, logger, bundle / manifest["graphs"][graph]["file"], plan,
                                       graph_io(spec, graph), opt_batch, max_batch, cache)
        engines[graph] = {"file": plan.name, "sha256": sha256_file(plan), "profiles": profiles}
        log.info("built TensorRT engine %s", plan.name)
    (bundle / TIMING_CACHE).write_bytes(cache)
    return {**info, "min_batch": 1, "opt_batch": opt_batch, "max_batch": max_batch, "engines": engines,
            "timing_cache": TIMING_CACHE}


def build_engine(trt: Any, logger: Any, onnx_path: Path, plan_path: Path, io_: GraphIO, opt_batch: int,
                 max_batch: int, cache: bytes) -> tuple[dict[str, Any], bytes]:
    """One engine; returns its profiles {input: {min, opt, max}} and the updated timing cache."""
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SVGError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    timing_cache = config.create_timing_cache(cache)
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    profiles = {}
    for t in io_.inputs:
        shapes = {"min": (1, *t.shape), "opt": (opt_batch, *t.shape), "max": (max_batch, *t.shape)}
        profile.set_shape(t.name, shapes["min"], shapes["opt"], shapes["max"])
        profiles[t.name] = {k: list(v) for k, v in shapes.items()}
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise SVGError(f"TensorRT failed to build an engine for {onnx_path.name} (see its log above)")
    plan_path.write_bytes(bytes(serialized))
    return profiles, bytes(config.get_timing_cache().serialize())
