"""Stand-ins for `tensorrt` and cuda-python's `cudart` that run each engine's ONNX graph with
onnxruntime on host memory. They let CPU CI exercise the TensorRT backend's own logic (device
buffers, ping-pong, CUDA graph capture and replay, chunking over the profile's max batch); the
real API is tested by the requires_tensorrt tests on a GPU."""

from __future__ import annotations

import ctypes
import json
import shutil
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort

from svg_runtime.hashing import sha256_file
from svg_runtime.manifest import RUNTIME_GRAPHS


class FakeCuda:
    """The cudart calls the backend makes; "device" memory is host memory."""

    cudaError_t = types.SimpleNamespace(cudaSuccess=0)
    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeThreadLocal=0)

    def __init__(self):
        self.mem: dict[int, np.ndarray] = {}
        self.capturing: list | None = None
        self.graph_launches = 0

    def cudaGetDeviceCount(self): return (0, 1)
    def cudaGetDeviceProperties(self, d): return (0, types.SimpleNamespace(name=b"Fake GPU"))
    def cudaSetDevice(self, d): return (0,)
    def cudaStreamCreate(self): return (0, 1)
    def cudaStreamSynchronize(self, s): return (0,)
    def cudaGraphInstantiate(self, g, flags): return (0, g)

    def cudaMalloc(self, n):
        a = np.zeros(n, np.uint8)
        self.mem[a.ctypes.data] = a
        return (0, a.ctypes.data)

    def cudaFree(self, ptr):
        self.mem.pop(ptr, None)
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        assert self.capturing is None, "copies must stay outside captured graphs"
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaStreamBeginCapture(self, stream, mode):
        self.capturing = []
        return (0,)

    def cudaStreamEndCapture(self, stream):
        graph, self.capturing = self.capturing, None
        return (0, graph)

    def cudaGraphLaunch(self, graph, stream):
        self.graph_launches += 1
        for op in graph:
            op()
        return (0,)


def _view(ptr: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape)


class _Engine:
    def __init__(self, cuda: FakeCuda, plan: bytes, max_batch: int):
        self.cuda, self.max_batch = cuda, max_batch
        self.sess = ort.InferenceSession(plan, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.sess.get_inputs()][::-1]  # TensorRT's order may differ
        self.outputs = [o.name for o in self.sess.get_outputs()]
        self.num_io_tensors = len(self.inputs) + len(self.outputs)
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}

    def get_tensor_name(self, i): return (self.inputs + self.outputs)[i]
    def get_tensor_mode(self, name): return "input" if name in self.inputs else "output"
    def get_tensor_profile_shape(self, name, profile): return [(1,), (1,), (self.max_batch,)]
    def create_execution_context(self): return self
    def set_input_shape(self, name, shape): self.shapes[name] = tuple(shape)
    def set_tensor_address(self, name, ptr): self.addresses[name] = ptr

    def execute_async_v3(self, stream):
        shapes, addresses = dict(self.shapes), dict(self.addresses)

        def run():
            feeds = {n: _view(addresses[n], shapes[n]).copy() for n in self.inputs}
            for name, out in zip(self.outputs, self.sess.run(self.outputs, feeds), strict=True):
                out = np.ascontiguousarray(out, np.float32)
                ctypes.memmove(addresses[name], out.ctypes.data, out.nbytes)

        if self.cuda.capturing is not None:
            self.cuda.capturing.append(run)
        else:
            run()
        return True


def fake_modules(max_batch: int) -> tuple[dict[str, types.ModuleType], FakeCuda]:
    """sys.modules entries for tensorrt and cuda.bindings.runtime."""
    cuda = FakeCuda()
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.0-fake"
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.Runtime = lambda logger: types.SimpleNamespace(
        deserialize_cuda_engine=lambda plan: _Engine(cuda, plan, max_batch))
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cuda
    return {"tensorrt": trt, "cuda": types.ModuleType("cuda"), "cuda.bindings": bindings,
            "cuda.bindings.runtime": cuda}, cuda


def with_fake_engines(bundle: Path, dst: Path, max_batch: int) -> Path:
    """A copy of bundle whose "engines" are its ONNX graphs (what the fake runtime runs)."""
    shutil.copytree(bundle, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    engines = {}
    for g in RUNTIME_GRAPHS:
        shutil.copy(dst / f"{g}.onnx", dst / f"{g}.plan")
        engines[g] = {"file": f"{g}.plan", "sha256": sha256_file(dst / f"{g}.plan"), "profiles": {}}
    manifest["tensorrt"] = {"version": "10.0-fake", "gpu": "Fake GPU", "min_batch": 1, "opt_batch": 1,
                            "max_batch": max_batch, "engines": engines}
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst
