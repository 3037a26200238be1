"""The torch-free SVG Predictor: observe real frames, fork into samples, roll the prior forward.

    p = Predictor.load("bundles/smmnist")            # onnxruntime on the CPU
    state = p.observe(context)                        # context (B, T, C, H, W), uint8 or float in [0, 1]
    out = p.sample(state, n_samples=100, horizon=10, seed=0)
    out.frames                                        # (B, N, horizon, C, H, W) float32 in [0, 1]
    out.sigma                                         # (B, N, horizon, z_dim): the learned prior's std

An action-conditioned bundle (manifest model.action_dim > 0) takes actions in the user's units:
`observe(context, actions=(B, T-1, A))` for the actions between context frames, and
`sample(state, actions=(B, K, H, A), n_samples=N)` for K candidate sequences of H actions, N
samples each: frames (B, K, N, H, C, H, W). Stepwise, for closed loops and tree search:
`p.observe_frame(state, frame, action=...)`, `p.fork(state, n)`, `p.step(state, action=...)`,
`state.copy()` / `state.restore(snapshot)`. The loop mirrors svg_core.sampling (observe,
observe_frame, fork, step, sample -> Rollout) exactly: conditioning uses the posterior mean, the
N samples of one video (or of one action sequence) are adjacent in the batch, and
`sample(seed=S)` uses the same numbers as `eps=np.random.default_rng(S).standard_normal(shape)`
with shape (B, N, horizon, z_dim) (or (B, K, N, horizon, z_dim)), float32.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svg_runtime.backends import Backend, Buffers, OrtBackend
from svg_runtime.errors import SVGRuntimeError
from svg_runtime.manifest import ACTION, ModelSpec, feedback, graph_io, is_skip, read_manifest, state_specs
from svg_runtime.pretrained import resolve_bundle

log = logging.getLogger("svg")
BACKENDS = ("auto", "ort", "trt")
POOL_SIZE = 4  # batch sizes whose rollout buffers sample() keeps (a planner alternates between a few)


@dataclass
class Rollout:
    """Sampled futures: frames (B, N, T, C, H, W) in [0, 1] ((B, K, N, T, C, H, W) for K action
    sequences); the prior's mu and sigma (..., T, z_dim) (FP: 0 and 1; det: z_dim 0); the eps that
    drove them, same shape."""

    frames: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    eps: np.ndarray


@dataclass
class StepOutput:
    """One predicted frame (B, C, H, W), read-only until the next step, and the prior's mu, sigma (B, z_dim)."""

    frame: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray


class State:
    """The rollout state of a batch of B videos (or B * N samples): last frame, skips, LSTM states.

    Its storage belongs to the backend (on the GPU with CUDA); `step` updates it in place.
    """

    def __init__(self, predictor: Predictor, buffers: Buffers):
        self._predictor, self._buffers = predictor, buffers

    @property
    def batch(self) -> int:
        return self._buffers.batch

    def tensors(self) -> dict[str, np.ndarray]:
        """Host copies of every state tensor by name (x_prev, skip_i, {module}_{h|c})."""
        return self._predictor.backend.read(self._buffers)

    def copy(self) -> State:
        """An independent snapshot (for tree search: copy, explore, `restore`)."""
        return State(self._predictor, self._predictor.backend.new_buffers(self.tensors()))

    def restore(self, snapshot: State) -> None:
        """Overwrite this state with a snapshot of the same batch size, in place."""
        if not isinstance(snapshot, State) or snapshot._predictor is not self._predictor:
            raise SVGRuntimeError("restore() takes a snapshot (state.copy()) made by the same Predictor as this state")
        if snapshot.batch != self.batch:
            raise SVGRuntimeError(f"cannot restore a state of batch {snapshot.batch} into one of batch {self.batch}")
        self._predictor.backend.write(self._buffers, snapshot.tensors())


def _tensorrt_importable() -> bool:
    import importlib.util
    import sys

    if "tensorrt" in sys.modules:
        return sys.modules["tensorrt"] is not None
    return importlib.util.find_spec("tensorrt") is not None


class Predictor:
    """Runs an exported bundle (see svg_export) with onnxruntime or TensorRT; never imports torch."""

    def __init__(self, bundle: Path, manifest: dict[str, Any], backend: Backend, seed: int | None = None):
        self.bundle, self.manifest, self.backend = bundle, manifest, backend
        self.spec = ModelSpec.from_manifest(manifest)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        # rollout buffers per batch size (B * N), reused by sample(); the POOL_SIZE last used are kept
        self._pool: OrderedDict[int, Buffers] = OrderedDict()
        self._condition_inputs = graph_io(self.spec, "condition").input_names

    @classmethod
    def load(cls, bundle: str | Path, backend: str = "auto", device: str = "cpu", threads: int | None = None,
             seed: int | None = None, io_binding: bool | None = None) -> Predictor:
        """Open a bundle. backend: auto (TensorRT when the bundle has engines, TensorRT is installed
        and device is cuda; else onnxruntime), ort or trt; device: cpu, cuda or cuda:N; threads: onnxruntime intra-op
        threads (None: its default); seed: of the generator used when no seed or eps is given;
        io_binding: onnxruntime IO binding (default: on for CUDA only, where it keeps state on the GPU)."""
        if backend not in BACKENDS:
            raise SVGRuntimeError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        if not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
            raise SVGRuntimeError(f"unknown device {device!r}: use cpu, cuda or cuda:N")
        bundle = resolve_bundle(bundle)  # a directory, or "pretrained:NAME" (shipped with the package)
        manifest = read_manifest(bundle)
        spec = ModelSpec.from_manifest(manifest)
        has_engines = bool(manifest.get("tensorrt"))
        if backend == "auto":
            backend = "trt" if has_engines and device != "cpu" and _tensorrt_importable() else "ort"
        if backend == "trt":
            if device == "cpu":
                raise SVGRuntimeError("the TensorRT backend runs on a GPU: use device='cuda' or backend='ort'")
            if not has_engines:
                raise SVGRuntimeError(f"bundle {bundle} has no TensorRT engines: re-export it with "
                                      "`svg export --trt` or use backend='ort'")
            from svg_runtime.trt_backend import TrtBackend

            engine: Backend = TrtBackend(bundle, manifest, spec, device)
        else:
            engine = OrtBackend(bundle, manifest, spec, device, threads=threads, io_binding=io_binding)
        log.debug("loaded bundle %s (%s, %s on %s)", bundle, spec.kind, engine.name, device)
        return cls(bundle, manifest, engine, seed)

    # --- conditioning -----------------------------------------------------------------------

    def observe(self, context: np.ndarray, actions: np.ndarray | None = None) -> State:
        """Condition on real frames, context (B, T, C, H, W), T >= 1: uint8 0..255 or float in [0, 1],
        and for an action-conditioned model the T - 1 actions between them, (B, T-1, A).

        All T frames go through the encoder in one call; the LSTMs step T - 1 times with the
        posterior mean. A single frame is valid: its state has zero LSTM state."""
        ctx = self._frames(context, ndim=5, what="context")
        b, t = ctx.shape[:2]
        acts = self._actions(actions, (b, t - 1), "actions between the context frames")
        enc = self.backend.run("encoder", {"x": ctx.reshape(b * t, *self.spec.frame_shape)})
        h = enc["h"].reshape(b, t, -1)  # (B, T, g_dim)
        tensors = {s.name: np.zeros((b, *s.shape), np.float32) for s in state_specs(self.spec)}
        tensors["x_prev"] = np.ascontiguousarray(ctx[:, -1])
        for name in tensors:
            if is_skip(name):
                tensors[name] = np.ascontiguousarray(enc[name].reshape(b, t, *enc[name].shape[1:])[:, -1])
        for i in range(1, t):
            tensors.update(self._condition(tensors, h[:, i - 1], h[:, i], None if acts is None else acts[:, i - 1]))
        return State(self, self.backend.new_buffers(tensors))

    def observe_frame(self, state: State, frame: np.ndarray, action: np.ndarray | None = None) -> State:
        """Condition a state on one more real frame (B, C, H, W), reached from the last one by
        action (B, A) for an action-conditioned model; updates the state and returns it."""
        self._own(state)
        x = self._frames(frame, ndim=4, what="frame")
        if len(x) != state.batch:
            raise SVGRuntimeError(f"frame has batch {len(x)} but the state has batch {state.batch}")
        act = self._actions(action, (state.batch,), "action")
        tensors = state.tensors()
        enc = self.backend.run("encoder", {"x": np.concatenate([tensors["x_prev"], x])})
        b = state.batch
        tensors.update(self._condition(tensors, enc["h"][:b], enc["h"][b:], act))
        tensors["x_prev"] = x
        tensors.update({k: enc[k][b:] for k in tensors if is_skip(k)})
        self.backend.write(state._buffers, tensors)
        return state

    def _condition(self, tensors: dict[str, np.ndarray], h_prev: np.ndarray, h_next: np.ndarray,
                   action: np.ndarray | None) -> dict:
        """Step the LSTMs on one observed transition; returns the new LSTM states by state name."""
        available = {**tensors, "h_prev": h_prev, "h_next": h_next, ACTION: action}
        feeds = {n: np.ascontiguousarray(available[n]) for n in self._condition_inputs}
        return {feedback(k): v for k, v in self.backend.run("condition", feeds).items()}

    def fork(self, state: State, n: int) -> State:
        """Repeat each entry n times: batch B -> B * n, the n copies of one video adjacent."""
        self._own(state)
        _check_count("n", n)
        return State(self, self.backend.new_buffers({k: np.repeat(v, n, axis=0) for k, v in state.tensors().items()}))

    # --- sampling -----------------------------------------------------------------------------

    def step(self, state: State, eps: np.ndarray | None = None, rng: np.random.Generator | None = None,
             action: np.ndarray | None = None) -> StepOutput:
        """Predict one frame for every entry of state and advance it in place.

        eps (B, z_dim): the prior's noise (FP: z itself); drawn from rng (or the Predictor's
        generator) when None. action (B, A): the action taken before the predicted frame (an
        action-conditioned model needs it)."""
        act = self._actions(action, (state.batch,), "action")
        self._own(state)
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise SVGRuntimeError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
        eps = self._step_eps(state.batch, eps, rng)
        out = self.backend.step(state._buffers, eps, act)
        frame = out["x_next"].view()
        frame.flags.writeable = False
        mu, sigma = self._gaussian(out, state.batch)
        return StepOutput(frame=frame, mu=mu, sigma=sigma)

    def sample(self, state: State, n_samples: int = 1, horizon: int | None = None, seed: int | None = None,
               eps: np.ndarray | None = None, actions: np.ndarray | None = None, out: Rollout | None = None
               ) -> Rollout:
        """Draw n_samples futures of horizon frames from a state of batch B (left unchanged).

        An action-conditioned model takes K candidate action sequences, actions (B, K, horizon, A)
        (horizon defaults to theirs): frames (B, K, N, horizon, C, H, W), all B*K*N futures in one
        batched rollout. eps (B, N, horizon, z_dim) -- (B, K, N, horizon, z_dim) with actions --
        fixes the noise; else it is drawn from default_rng(seed) (or the Predictor's generator
        when seed is None). out: a Rollout of an earlier call of the same shapes, whose arrays are
        overwritten instead of allocating new ones (planning loops)."""
        self._own(state)
        if actions is not None and horizon is None:
            horizon = np.shape(actions)[2] if np.ndim(actions) == 4 else None
        horizon = 1 if horizon is None else horizon
        _check_count("n_samples", n_samples)
        _check_count("horizon", horizon)
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
            raise SVGRuntimeError(f"seed must be a non-negative integer or None, got {seed!r}")
        b, n, z = state.batch, n_samples, self.spec.latent_dim
        acts = self._sequences(actions, b, horizon)  # (B, K, H, A) or None
        lead = (b, n) if acts is None else (b, acts.shape[1], n)
        m = int(np.prod(lead[1:]))  # futures per state entry
        eps = self._rollout_eps((*lead, horizon, z), eps, seed)
        eps_t = np.ascontiguousarray(np.moveaxis(eps, -2, 0)).reshape(horizon, b * m, z)  # per step
        acts_t = None
        if acts is not None:  # (H, B*K*N, A), the N samples of one sequence adjacent
            acts_t = np.ascontiguousarray(np.moveaxis(np.repeat(acts, n, axis=1), 2, 0)).reshape(horizon, b * m, -1)
        bufs = self._rollout_buffers(state, m)
        frame_shape = (*lead, horizon, *self.spec.frame_shape)
        if out is not None and out.frames.shape == frame_shape and out.mu.shape == (*lead, horizon, z):
            frames, mu, logvar = out.frames, out.mu, out.sigma  # sigma holds logvar until the end
            mu.fill(0.0)
            logvar.fill(0.0)
        else:
            frames = np.empty(frame_shape, np.float32)
            mu = np.zeros((*lead, horizon, z), np.float32)
            logvar = np.zeros((*lead, horizon, z), np.float32)
        for t in range(horizon):
            out = self.backend.step(bufs, eps_t[t] if z else None, None if acts_t is None else acts_t[t])
            frames[..., t, :, :, :] = out["x_next"].reshape(*lead, *self.spec.frame_shape)
            if self.spec.has_prior:
                mu[..., t, :] = out["mu"].reshape(*lead, z)
                logvar[..., t, :] = out["logvar"].reshape(*lead, z)
        _check_finite(frames)
        sigma = np.exp(0.5 * logvar, out=logvar)
        return Rollout(frames=frames, mu=mu, sigma=sigma, eps=eps)

    def _rollout_buffers(self, state: State, m: int) -> Buffers:
        """Pooled buffers of batch B * m holding state's entries, each repeated m times."""
        return self._pooled(state.batch * m, {k: np.repeat(v, m, axis=0) for k, v in state.tensors().items()})

    def _pooled(self, batch: int, tensors: dict[str, np.ndarray]) -> Buffers:
        """The pool's buffers of this batch size filled with tensors (least recently used evicted)."""
        bufs = self._pool.pop(batch, None)
        if bufs is None:
            bufs = self.backend.new_buffers(tensors)
        else:
            self.backend.write(bufs, tensors)
        self._pool[batch] = bufs
        while len(self._pool) > POOL_SIZE:
            self._pool.popitem(last=False)
        return bufs

    def reset(self, seed: int | None = None) -> None:
        """Free the per-batch rollout buffers and reseed the default generator (to the load seed
        when seed is None)."""
        self._pool.clear()
        self._rng = np.random.default_rng(self._seed if seed is None else seed)

    # --- checks -------------------------------------------------------------------------------

    def _own(self, state: Any) -> None:
        if not isinstance(state, State):
            raise SVGRuntimeError(f"expected a State from Predictor.observe(), got {type(state).__name__}")
        if state._predictor is not self:
            raise SVGRuntimeError(f"this State belongs to another Predictor (bundle {state._predictor.bundle}): "
                                  "observe the frames with this Predictor")

    def _frames(self, frames: Any, ndim: int, what: str) -> np.ndarray:
        """Validate frames (..., C, H, W) and convert them to float32 in [0, 1]."""
        arr = np.asarray(frames)
        c, h, w = self.spec.frame_shape
        dims = "(B, T, C, H, W)" if ndim == 5 else "(B, C, H, W)"
        if arr.ndim != ndim:
            raise SVGRuntimeError(f"{what} must have shape {dims}, got {arr.shape}")
        if arr.shape[-3:] != (c, h, w):
            raise SVGRuntimeError(f"{what} frames are {arr.shape[-3:]} (C, H, W) but this model takes {(c, h, w)}: "
                                  f"convert to {c} channel(s) and resize to {h}x{w}")
        if arr.shape[0] < 1 or (ndim == 5 and arr.shape[1] < 1):
            raise SVGRuntimeError(f"{what} is empty: need at least one batch entry and one frame")
        if arr.dtype == np.uint8:
            return arr.astype(np.float32) / np.float32(255)
        if arr.dtype.kind != "f":
            raise SVGRuntimeError(f"{what} has dtype {arr.dtype}: pass uint8 (0..255) or float (0..1)")
        arr = np.array(arr, dtype=np.float32)  # a copy: the state must not alias the caller's array
        lo, hi = float(arr.min()), float(arr.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise SVGRuntimeError(f"{what} contains NaN or infinite values")
        if lo < 0.0 or hi > 1.0:
            raise SVGRuntimeError(f"{what} values span [{lo:g}, {hi:g}]: float frames must lie in [0, 1] "
                                  "(divide 0..255 data by 255 or pass uint8)")
        return arr

    def _actions(self, actions: Any, lead: tuple[int, ...], what: str) -> np.ndarray | None:
        """Validate actions (*lead, A) in the user's units; None for an unconditional model."""
        a_dim = self.spec.action_dim
        if actions is None:
            if a_dim and (len(lead) == 1 or lead[1] > 0):
                raise SVGRuntimeError(f"this model is action-conditioned: pass the {what}, shape "
                                      f"{(*lead, a_dim)} ({', '.join(self.spec.action_names) or f'{a_dim} values'})")
            return None
        if not a_dim:
            raise SVGRuntimeError(f"this model was trained without actions: drop the {what}")
        arr = np.asarray(actions)
        if arr.dtype.kind not in "fiu":
            raise SVGRuntimeError(f"{what} must be numbers, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.shape != (*lead, a_dim):
            raise SVGRuntimeError(f"{what} must have shape {(*lead, a_dim)}, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise SVGRuntimeError(f"{what} contain NaN or infinite values")
        return arr

    def _sequences(self, actions: Any, batch: int, horizon: int) -> np.ndarray | None:
        """Candidate action sequences (B, K, horizon, A), validated."""
        if actions is None:
            if self.spec.has_actions:
                raise SVGRuntimeError(f"this model is action-conditioned: pass actions of shape "
                                      f"(B, K, horizon, {self.spec.action_dim}) (K candidate sequences)")
            return None
        k = np.shape(actions)[1] if np.ndim(actions) == 4 else -1
        if k < 1:
            raise SVGRuntimeError(f"actions must have shape (B, K, horizon, A) = ({batch}, K, {horizon}, "
                                  f"{self.spec.action_dim or 'A'}) with K >= 1, got {np.shape(actions)}")
        return self._actions(actions, (batch, k, horizon), "actions")

    def _step_eps(self, batch: int, eps: np.ndarray | None, rng: np.random.Generator | None) -> np.ndarray | None:
        z = self.spec.latent_dim
        if not z:
            if eps is not None and np.size(eps):
                raise SVGRuntimeError("this deterministic model takes no eps")
            return None
        if eps is None:
            return (rng or self._rng).standard_normal((batch, z), dtype=np.float32)
        return self._check_eps(eps, (batch, z))

    def _rollout_eps(self, shape: tuple[int, ...], eps: np.ndarray | None, seed: int | None) -> np.ndarray:
        if eps is None:
            rng = self._rng if seed is None else np.random.default_rng(seed)
            return rng.standard_normal(shape, dtype=np.float32)
        if not shape[-1] and np.size(eps):
            raise SVGRuntimeError("this deterministic model takes no eps")
        return self._check_eps(eps, shape)

    @staticmethod
    def _check_eps(eps: Any, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.ascontiguousarray(eps, dtype=np.float32)
        if arr.shape != shape:
            raise SVGRuntimeError(f"eps must have shape {shape}, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise SVGRuntimeError("eps contains NaN or infinite values")
        return arr

    def _gaussian(self, out: dict[str, np.ndarray], batch: int) -> tuple[np.ndarray, np.ndarray]:
        if self.spec.has_prior:
            return out["mu"], np.exp(0.5 * out["logvar"])
        z = self.spec.latent_dim  # FP: N(0, I); det: nothing
        return np.zeros((batch, z), np.float32), np.ones((batch, z), np.float32)


def _check_finite(frames: np.ndarray) -> None:
    if not np.isfinite(frames.sum(dtype=np.float64)):  # one pass, no temporary array
        raise SVGRuntimeError("the model predicted NaN or infinite frames: the bundle's weights are not finite "
                              "(a damaged or diverged checkpoint); re-export it from a good checkpoint")


def _check_count(name: str, value: Any) -> None:
    """A count must be an int >= 1 (2.5 or "3" would be truncated or fail deep inside numpy)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SVGRuntimeError(f"need {name} >= 1 (an integer), got {value!r}")
