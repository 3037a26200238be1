"""Execution backends behind the Predictor: onnxruntime (CPU or CUDA) and TensorRT.

A backend runs a bundle's graphs on host arrays (`run`) and owns the storage of rollout states
(`Buffers`): the tensors a step rewrites (x_prev and the prior/predictor LSTM states) live in two
sets allocated once per state and swapped after every step (ping-pong); tensors a step only reads
(skips, posterior state) live once beside them. `step` runs the fused step graph on one state.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from svg_runtime.errors import SVGRuntimeError
from svg_runtime.hashing import sha256_file
from svg_runtime.manifest import (
    ACTION,
    RUNTIME_GRAPHS,
    GraphIO,
    ModelSpec,
    check_file_name,
    feedback,
    graph_io,
)

log = logging.getLogger("svg")
# The step graph runs back to back in a rollout: its worker threads spin between runs (for at most
# this long) instead of sleeping, which saves the wake-up at each of its ~100 kernels: -10% per step
# at batch 1 and at batch 100 on a 2-core CPU. The other graphs alternate with each other, where
# spinning threads of one session would steal the cores of the next (docs/design.md): they sleep.
SPINNING_GRAPHS = ("step",)
SPIN_DURATION_US = 1000
NO_CUDA = ("device='cuda' but onnxruntime has no working CUDA provider (no GPU, or the CPU-only onnxruntime "
           "package): `pip install svg-video[gpu]` or use device='cpu'")


class Buffers:
    """Backend-side storage of one rollout state of a fixed batch size."""

    def __init__(self, static: dict[str, Any], sets: list[dict[str, Any]], batch: int):
        self.static = static  # tensors a step only reads
        self.sets = sets  # [current, next] of the tensors a step rewrites
        self.parity = 0
        self.batch = batch
        self.cache: dict[str, Any] = {}  # backend-specific (bindings, eps buffer, CUDA graphs)

    @property
    def current(self) -> dict[str, Any]:
        return self.sets[self.parity]


class Backend(Protocol):
    """What the Predictor's loop needs from an execution engine."""

    name: str
    device: str

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one graph on host arrays; returns host arrays by output name."""

    def new_buffers(self, tensors: dict[str, np.ndarray]) -> Buffers:
        """Allocate a state's storage and fill it from host arrays."""

    def write(self, buffers: Buffers, tensors: dict[str, np.ndarray]) -> None:
        """Overwrite a state's tensors (same batch size) from host arrays."""

    def read(self, buffers: Buffers) -> dict[str, np.ndarray]:
        """Host copies of a state's tensors."""

    def step(self, buffers: Buffers, eps: np.ndarray | None, action: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """One fused step in place (action (B, A): an action-conditioned model's input); returns
        x_next (and mu, logvar for LP) as host arrays that stay valid until the next step on these
        buffers."""


def graph_file(bundle: Path, manifest: dict[str, Any], graph: str, key: str = "file") -> Path:
    """A graph's file, checked against the manifest's sha256 (a truncated copy fails here)."""
    entry = manifest["graphs"][graph] if key == "file" else manifest["tensorrt"]["engines"][graph]
    check_file_name(entry["file"], f"{bundle}: graph {graph!r}")
    path = bundle / entry["file"]
    if path.is_symlink() or (path.exists() and path.resolve().parent != Path(bundle).resolve()):
        raise SVGRuntimeError(f"{path} is a link: a bundle's graphs must be plain files inside it (a link could "
                              "open any file); copy the file into the bundle or re-export it")
    if not path.is_file():
        raise SVGRuntimeError(f"bundle {bundle} is missing {entry['file']}: re-export it with `svg export`")
    if sha256_file(path) != entry["sha256"]:
        raise SVGRuntimeError(f"{path} is corrupt (its sha256 differs from the manifest's): re-export the bundle")
    return path


def split_state(spec: ModelSpec, tensors: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(tensors the step only reads, tensors the step rewrites)."""
    written = {feedback(t.name) for t in graph_io(spec, "step").outputs}
    static = {k: v for k, v in tensors.items() if k not in written}
    return static, {k: v for k, v in tensors.items() if k in written}


class OrtBackend:
    """onnxruntime on CPU (plain session.run) or CUDA (IO binding, state kept on the device).

    Sessions use ORT_ENABLE_ALL and sequential execution; only the step session's threads spin
    between runs (SPINNING_GRAPHS). `threads` sets intra_op_num_threads (None: onnxruntime's
    default, one per physical core).
    """

    name = "ort"

    def __init__(self, bundle: Path, manifest: dict[str, Any], spec: ModelSpec, device: str = "cpu",
                 threads: int | None = None, io_binding: bool | None = None):
        from svg_runtime.extras import import_onnxruntime

        ort = import_onnxruntime()
        self.spec, self.device = spec, device
        self._ort = ort
        self._device_type, _, index = device.partition(":")
        self._device_id = int(index or 0)
        self.io_binding = self._device_type == "cuda" if io_binding is None else io_binding
        self.threads = threads
        providers: list[Any] = ["CPUExecutionProvider"]
        if self._device_type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise SVGRuntimeError(NO_CUDA)
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self._device_id}))
        self.sessions = {g: self._session(g, graph_file(bundle, manifest, g),
                                          self.session_options(spin=g in SPINNING_GRAPHS), providers)
                         for g in RUNTIME_GRAPHS}
        self.io = {g: graph_io(spec, g) for g in self.sessions}

    def session_options(self, spin: bool = False) -> Any:
        """The onnxruntime SessionOptions of this backend's sessions (spin: see SPINNING_GRAPHS; CPU only)."""
        opts = self._ort.SessionOptions()
        opts.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        spin = spin and self._device_type == "cpu"
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        if spin:
            opts.add_session_config_entry("session.intra_op.spin_duration_us", str(SPIN_DURATION_US))
        opts.log_severity_level = 3
        if self.threads is not None:
            opts.intra_op_num_threads = self.threads
        return opts

    def _session(self, graph: str, path: Path, opts: Any, providers: list[Any]) -> Any:
        try:
            sess = self._ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own pybind exception types
            raise SVGRuntimeError(f"onnxruntime cannot load {path} ({str(e).splitlines()[0]}); "
                                  "the file is corrupt or was not written by `svg export`") from e
        if self._device_type == "cuda" and sess.get_providers()[0] != "CUDAExecutionProvider":
            # onnxruntime-gpu lists CUDA without a GPU and then falls back to the CPU silently
            raise SVGRuntimeError(NO_CUDA)
        expected = graph_io(self.spec, graph)  # by the manifest's key: a file swapped for another fails
        check_io(path, [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()], expected)
        check_shapes(path, {t.name: t.shape for t in (*sess.get_inputs(), *sess.get_outputs())}, expected)
        return sess

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.io[graph].output_names
        return dict(zip(names, self.sessions[graph].run(names, feeds), strict=True))

    def _alloc(self, array: np.ndarray) -> Any:
        if self._device_type == "cpu":  # wraps the array's memory: give it its own copy
            return self._ort.OrtValue.ortvalue_from_numpy(np.array(array, dtype=np.float32))
        return self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array, dtype=np.float32),
                                                      self._device_type, self._device_id)

    def new_buffers(self, tensors: dict[str, np.ndarray]) -> Buffers:
        static, written = split_state(self.spec, tensors)
        batch = len(tensors["x_prev"])
        if not self.io_binding:
            return Buffers(dict(static), [dict(written)], batch)
        bufs = Buffers({k: self._alloc(v) for k, v in static.items()},
                       [{k: self._alloc(v) for k, v in written.items()} for _ in range(2)], batch)
        self._bind(bufs)
        return bufs

    def _bind(self, bufs: Buffers) -> None:
        """Two IO bindings per state: current set -> next set and back; outputs stay in place."""
        io = self.io["step"]
        if self.spec.has_latent:
            bufs.cache["eps"] = self._alloc(np.zeros((bufs.batch, self.spec.z_dim), np.float32))
        if self.spec.has_actions:
            bufs.cache[ACTION] = self._alloc(np.zeros((bufs.batch, self.spec.action_dim), np.float32))
        outs = {t.name: self._alloc(np.zeros((bufs.batch, *t.shape), np.float32))
                for t in io.outputs if feedback(t.name) not in bufs.sets[0]}
        bufs.cache["outputs"] = outs
        bindings = []
        for parity in (0, 1):
            binding = self.sessions["step"].io_binding()
            src, dst = bufs.sets[parity], bufs.sets[1 - parity]
            for name in io.input_names:
                value = bufs.cache[name] if name in ("eps", ACTION) else src.get(name, bufs.static.get(name))
                binding.bind_ortvalue_input(name, value)
            for name in io.output_names:
                binding.bind_ortvalue_output(name, dst[feedback(name)] if feedback(name) in dst else outs[name])
            bindings.append(binding)
        bufs.cache["bindings"] = bindings

    def write(self, buffers: Buffers, tensors: dict[str, np.ndarray]) -> None:
        static, written = split_state(self.spec, tensors)
        if not self.io_binding:
            buffers.static, buffers.sets, buffers.parity = dict(static), [dict(written)], 0
            return
        for part, values in ((buffers.static, static), (buffers.current, written)):
            for k, v in values.items():
                part[k].update_inplace(np.ascontiguousarray(v, dtype=np.float32))

    def read(self, buffers: Buffers) -> dict[str, np.ndarray]:
        tensors = {**buffers.static, **buffers.current}
        if not self.io_binding:
            return {k: v.copy() for k, v in tensors.items()}
        return {k: np.array(v.numpy(), copy=True) for k, v in tensors.items()}

    def step(self, buffers: Buffers, eps: np.ndarray | None, action: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if not self.io_binding:
            current = buffers.current
            feeds = {n: current[n] if n in current else buffers.static[n] for n in self.io["step"].input_names
                     if n not in ("eps", ACTION)}
            if eps is not None:
                feeds["eps"] = eps
            if action is not None:
                feeds[ACTION] = action
            outs = self.run("step", feeds)
            for name, value in outs.items():
                if feedback(name) in current:
                    current[feedback(name)] = value
            return outs
        if eps is not None:
            buffers.cache["eps"].update_inplace(eps)
        if action is not None:
            buffers.cache[ACTION].update_inplace(np.ascontiguousarray(action, dtype=np.float32))
        self.sessions["step"].run_with_iobinding(buffers.cache["bindings"][buffers.parity])
        buffers.parity ^= 1
        outs = {"x_next": buffers.current["x_prev"].numpy()}
        outs.update({k: v.numpy() for k, v in buffers.cache["outputs"].items()})
        return outs


def check_io(path: Path, inputs: list[str], outputs: list[str], expected: GraphIO) -> None:
    """Fail fast when a graph's tensors differ from the naming scheme this runtime uses."""
    if inputs != expected.input_names or outputs != expected.output_names:
        raise SVGRuntimeError(f"{path} has inputs {inputs} and outputs {outputs}, but this runtime expects "
                              f"{expected.input_names} -> {expected.output_names}: re-export the bundle "
                              "with this version of svg-video")


def check_shapes(path: Path, shapes: dict[str, list[Any]], expected: GraphIO) -> None:
    """Fail fast when a graph's tensor shapes differ from what the manifest's model section implies
    (z_dim, rnn_size, layers, image size...); axis 0 (batch) and symbolic axes are not compared."""
    for t in (*expected.inputs, *expected.outputs):
        got = list(shapes[t.name])[1:]
        if len(got) != len(t.shape) or any(isinstance(g, int) and g != w for g, w in zip(got, t.shape, strict=True)):
            raise SVGRuntimeError(f"{path}: tensor {t.name} has shape {['batch', *got]}, but the manifest implies "
                                  f"{['batch', *t.shape]}: the manifest was edited or belongs to another export; "
                                  "re-export the bundle with `svg export`")
