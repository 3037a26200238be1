"""TensorRT backend: the bundle's engines on an NVIDIA GPU, state kept on the device.

Written to the TensorRT 10 Python API (deserialize_cuda_engine, set_input_shape,
set_tensor_address, execute_async_v3) with cuda-python for memory, streams and CUDA graphs. A
state's two ping-pong sets live at fixed device addresses, so each (state buffers, parity) pair is
captured once as a CUDA graph and replayed afterwards; the Predictor reuses one rollout state per
batch size, which makes that one pair of graphs per batch size. Tested only where TensorRT and a
GPU exist (tests marked requires_tensorrt).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np

from svg_runtime.backends import Buffers, check_io, graph_file, split_state
from svg_runtime.errors import SVGRuntimeError
from svg_runtime.manifest import ACTION, RUNTIME_GRAPHS, ModelSpec, feedback, graph_io

INSTALL_HINT = "pip install svg-video[gpu] (tensorrt>=10 and cuda-python) on a machine with an NVIDIA GPU"


def import_tensorrt() -> tuple[Any, Any]:
    """(tensorrt, cudart) modules, or a clear error naming what is missing."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise SVGRuntimeError(f"TensorRT is not installed: {INSTALL_HINT}") from e
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError as e:
            raise SVGRuntimeError(f"cuda-python is not installed: {INSTALL_HINT}") from e
    return trt, cudart


def gpu_name(cudart: Any, device_id: int = 0) -> str:
    """The GPU's name, or SVGRuntimeError when no GPU is visible."""
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count <= device_id:
        raise SVGRuntimeError(f"no NVIDIA GPU {device_id} visible (CUDA reports {count if not err else 0}; "
                              "check the driver and CUDA_VISIBLE_DEVICES)")
    props = _cuda(cudart, cudart.cudaGetDeviceProperties(device_id))
    return props.name.decode() if isinstance(props.name, bytes) else str(props.name)


def _cuda(cudart: Any, result: Any) -> Any:
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else tuple(values)


class _DeviceArray:
    """A float32 device allocation of a fixed shape, freed with its owner."""

    def __init__(self, cudart: Any, shape: tuple[int, ...]):
        self.shape, self.nbytes = shape, int(np.prod(shape)) * 4
        self.ptr = _cuda(cudart, cudart.cudaMalloc(max(self.nbytes, 4)))
        weakref.finalize(self, cudart.cudaFree, self.ptr)


class _Engine:
    def __init__(self, trt: Any, runtime: Any, path: Path):
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise SVGRuntimeError(f"TensorRT cannot load {path}: built by another TensorRT version or GPU, or "
                                  "corrupt; re-export with `svg export --trt` on this machine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.inputs[0], 0)[2][0])

    def launch(self, arrays: dict[str, _DeviceArray], stream: Any) -> None:
        for name in self.inputs:
            self.context.set_input_shape(name, arrays[name].shape)
        for name in self.inputs + self.outputs:
            self.context.set_tensor_address(name, arrays[name].ptr)
        if not self.context.execute_async_v3(int(stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed")


class TrtBackend:
    name = "trt"

    def __init__(self, bundle: Path, manifest: dict[str, Any], spec: ModelSpec, device: str = "cuda",
                 cuda_graphs: bool = True):
        self._trt, self._cudart = import_tensorrt()
        self.spec, self.device, self.cuda_graphs = spec, device, cuda_graphs
        device_id = int(device.partition(":")[2] or 0)
        gpu_name(self._cudart, device_id)
        _cuda(self._cudart, self._cudart.cudaSetDevice(device_id))
        self._stream = _cuda(self._cudart, self._cudart.cudaStreamCreate())
        runtime = self._trt.Runtime(self._trt.Logger(self._trt.Logger.WARNING))
        self.engines = {g: _Engine(self._trt, runtime, graph_file(bundle, manifest, g, key="engine"))
                        for g in RUNTIME_GRAPHS}
        for g, eng in self.engines.items():  # TensorRT may list tensors in another order
            expected = graph_io(spec, g)
            if set(eng.inputs) == set(expected.input_names) and set(eng.outputs) == set(expected.output_names):
                eng.inputs, eng.outputs = expected.input_names, expected.output_names
            check_io(bundle / manifest["tensorrt"]["engines"][g]["file"], eng.inputs, eng.outputs, expected)
        self.io = {g: graph_io(spec, g) for g in RUNTIME_GRAPHS}

    # --- memory -----------------------------------------------------------------------------

    def _copy(self, dst: int, src: int, nbytes: int, kind: str) -> None:
        kinds = self._cudart.cudaMemcpyKind
        _cuda(self._cudart, self._cudart.cudaMemcpyAsync(dst, src, nbytes, getattr(kinds, f"cudaMemcpy{kind}"),
                                                         self._stream))

    def _upload(self, array: np.ndarray, dst: _DeviceArray | None = None) -> _DeviceArray:
        array = np.ascontiguousarray(array, dtype=np.float32)
        dst = dst or _DeviceArray(self._cudart, array.shape)
        self._copy(dst.ptr, array.ctypes.data, dst.nbytes, "HostToDevice")
        _cuda(self._cudart, self._cudart.cudaStreamSynchronize(self._stream))  # the host array may go away
        return dst

    def _download(self, src: _DeviceArray, out: np.ndarray | None = None) -> np.ndarray:
        out = np.empty(src.shape, np.float32) if out is None else out
        self._copy(out.ctypes.data, src.ptr, src.nbytes, "DeviceToHost")
        return out

    def _sync(self) -> None:
        _cuda(self._cudart, self._cudart.cudaStreamSynchronize(self._stream))

    # --- Backend protocol ---------------------------------------------------------------------

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host arrays in and out; batches above the engine's profile run in chunks."""
        eng, io_ = self.engines[graph], self.io[graph]
        n = len(next(iter(feeds.values())))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in io_.output_names}
        for lo in range(0, n, eng.max_batch):
            chunk = {k: self._upload(v[lo:lo + eng.max_batch]) for k, v in feeds.items()}
            b = min(eng.max_batch, n - lo)
            chunk.update({t.name: _DeviceArray(self._cudart, (b, *t.shape)) for t in io_.outputs})
            eng.launch(chunk, self._stream)
            for name in io_.output_names:
                parts[name].append(self._download(chunk[name]))
            self._sync()
        return {k: np.concatenate(v) for k, v in parts.items()}

    def new_buffers(self, tensors: dict[str, np.ndarray]) -> Buffers:
        static, written = split_state(self.spec, tensors)
        batch = len(tensors["x_prev"])
        bufs = Buffers({k: self._upload(v) for k, v in static.items()},
                       [{k: self._upload(v) for k, v in written.items()} for _ in range(2)], batch)
        step = self.io["step"]
        bufs.cache["eps"] = _DeviceArray(self._cudart, (batch, self.spec.z_dim))
        if self.spec.has_actions:
            bufs.cache[ACTION] = _DeviceArray(self._cudart, (batch, self.spec.action_dim))
        bufs.cache["outputs"] = {t.name: _DeviceArray(self._cudart, (batch, *t.shape)) for t in step.outputs
                                 if feedback(t.name) not in written}
        bufs.cache["host"] = {t.name: np.empty((batch, *t.shape), np.float32) for t in step.outputs
                              if feedback(t.name) not in written or t.name == "x_next"}
        bufs.cache["graphs"], bufs.cache["runs"] = {}, [0, 0]
        return bufs

    def write(self, buffers: Buffers, tensors: dict[str, np.ndarray]) -> None:
        static, written = split_state(self.spec, tensors)
        for part, values in ((buffers.static, static), (buffers.current, written)):
            for k, v in values.items():
                self._upload(v, part[k])

    def read(self, buffers: Buffers) -> dict[str, np.ndarray]:
        out = {k: self._download(v) for k, v in {**buffers.static, **buffers.current}.items()}
        self._sync()
        return out

    def step(self, buffers: Buffers, eps: np.ndarray | None, action: np.ndarray | None = None) -> dict[str, np.ndarray]:
        cache, parity = buffers.cache, buffers.parity
        for name, value in (("eps", eps), (ACTION, action)):
            if value is not None:
                self._copy(cache[name].ptr, np.ascontiguousarray(value).ctypes.data, cache[name].nbytes, "HostToDevice")
        graph = cache["graphs"].get(parity)
        if graph is not None:
            _cuda(self._cudart, self._cudart.cudaGraphLaunch(graph, self._stream))
        else:
            arrays = self._step_arrays(buffers)
            if self.cuda_graphs and cache["runs"][parity] > 0:  # capture after one plain run (lazy init)
                cache["graphs"][parity] = self._capture(arrays)
                _cuda(self._cudart, self._cudart.cudaGraphLaunch(cache["graphs"][parity], self._stream))
            else:
                self.engines["step"].launch(arrays, self._stream)
            cache["runs"][parity] += 1
        buffers.parity ^= 1
        host = cache["host"]
        self._download(buffers.current["x_prev"], host["x_next"])
        for name, dev in cache["outputs"].items():
            self._download(dev, host[name])
        self._sync()  # also keeps eps's and the action's host memory alive until their copies are done
        return host

    def _step_arrays(self, buffers: Buffers) -> dict[str, _DeviceArray]:
        src, dst = buffers.current, buffers.sets[1 - buffers.parity]
        inputs = {k: buffers.cache[k] for k in ("eps", ACTION) if k in buffers.cache}
        arrays = {**inputs, **buffers.static, **src, **buffers.cache["outputs"]}
        arrays.update({name: dst[feedback(name)] for name in self.io["step"].output_names if feedback(name) in dst})
        return arrays

    def _capture(self, arrays: dict[str, _DeviceArray]) -> Any:
        cudart = self._cudart
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        _cuda(cudart, cudart.cudaStreamBeginCapture(self._stream, mode))
        self.engines["step"].launch(arrays, self._stream)
        graph = _cuda(cudart, cudart.cudaStreamEndCapture(self._stream))
        return _cuda(cudart, cudart.cudaGraphInstantiate(graph, 0))
