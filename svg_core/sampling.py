"""Generation with explicit state: observe real frames, fork into samples, step the prior.

The same loop runs in the exported runtime (svg_runtime.predictor) over ONNX graphs, with the same
words: `observe`, `observe_frame`, `fork`, `step`, `sample` -> `Rollout(frames, mu, sigma, eps)`;
for the same context, actions and eps both give the same frames. Conditioning uses the posterior
mean (eps = 0), so the state after observing a context is deterministic and all randomness lies
in the future's eps. Actions (action-conditioned models) are in the user's units: the model
normalises them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from svg_core.model import SVG
from svg_runtime.manifest import is_skip, lstm_part, skip_index, skip_name, state_name

LSTMState = tuple[torch.Tensor, torch.Tensor]  # h, c: (B, n_layers, rnn_size) each
Named = dict[str, torch.Tensor]


@dataclass
class State:
    """Everything a rollout carries between steps; every tensor is batch-first."""

    x_prev: torch.Tensor | None  # (B, C, H, W) last frame, real or predicted (None: not needed)
    skips: list[torch.Tensor]  # encoder features of the last real frame (or of x_prev with last_frame_skip)
    predictor: LSTMState
    posterior: LSTMState | None
    prior: LSTMState | None

    @property
    def batch(self) -> int:
        return self.predictor[0].shape[0]

    def to_named(self, next: bool = False) -> Named:
        """The state's tensors by bundle name (x_prev, skip_i, {module}_{h|c}; `_next` names with next)."""
        out: Named = {} if self.x_prev is None or next else {"x_prev": self.x_prev}
        if not next:
            out.update({skip_name(i): s for i, s in enumerate(self.skips)})
        for module in ("posterior", "prior", "predictor"):
            lstm = getattr(self, module)
            if lstm is not None:
                out[state_name(module, "h", next)], out[state_name(module, "c", next)] = lstm
        return out

    @classmethod
    def from_named(cls, named: Named) -> State:
        """The inverse of `to_named`: a State from tensors by bundle name (absent parts are None)."""
        skips = sorted((skip_index(k), v) for k, v in named.items() if is_skip(k))
        lstms: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in named.items():
            part = lstm_part(key)
            if part is not None:
                lstms.setdefault(part[0], {})[part[1]] = value

        def pair(module: str) -> LSTMState | None:
            return (lstms[module]["h"], lstms[module]["c"]) if module in lstms else None

        return cls(x_prev=named.get("x_prev"), skips=[v for _, v in skips], predictor=pair("predictor"),
                   posterior=pair("posterior"), prior=pair("prior"))


@dataclass
class Rollout:
    """Sampled futures (the runtime's Rollout, in torch tensors).

    frames (B, N, T, C, H, W) in [0, 1] -- (B, K, N, T, C, H, W) for K candidate action sequences;
    mu, sigma: the prior's Gaussian at each step, (..., T, z_dim) (FP: 0 and 1; det: z_dim 0);
    eps: the noise that drove them, same shape.
    """

    frames: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor
    eps: torch.Tensor


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """BatchNorm in eval mode and no autograd; restores the previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _map(state: State, fn) -> State:
    return State.from_named({k: fn(v) for k, v in state.to_named().items()})


def fork(state: State, n_samples: int) -> State:
    """Repeat each batch entry n_samples times: batch B -> B * N, samples of one video adjacent."""
    return _map(state, lambda t: t.repeat_interleave(n_samples, dim=0))


def clone(state: State) -> State:
    return _map(state, torch.clone)


def _zero_lstm(module, batch: int, like: torch.Tensor) -> LSTMState | None:
    return None if module is None else module.zero_state(batch, like.device, like.dtype)


def condition(model: SVG, state: State, h_prev: torch.Tensor, h_next: torch.Tensor,
              action: torch.Tensor | None = None) -> State:
    """Step posterior (mean), prior and predictor on one observed transition, h_prev -> h_next
    (B, g_dim), reached by action (B, A) for an action-conditioned model."""
    a = model.action_input(action, h_prev.shape[0])  # (B, A), normalised
    inp, post, prior = torch.cat([h_prev, a], dim=1), state.posterior, state.prior
    if model.posterior is not None:
        zero = h_prev.new_zeros(h_prev.shape[0], model.cfg.z_dim)
        z, _, _, *post = model.posterior(h_next, *state.posterior, zero)
        if model.prior is not None:
            _, _, _, *prior = model.prior(model.prior_input(h_prev, a), *state.prior, zero)
        inp = torch.cat([h_prev, z, a], dim=1)
    _, *pred = model.predictor(inp, *state.predictor)
    return replace(state, predictor=tuple(pred), posterior=post and tuple(post), prior=prior and tuple(prior))


def observe(model: SVG, context: torch.Tensor, actions: torch.Tensor | None = None) -> State:
    """Condition on real frames context (B, K, C, H, W), K >= 1, and the K - 1 actions between
    them (B, K-1, A) for an action-conditioned model; encodes all K frames in one call."""
    b, k = context.shape[:2]
    if actions is not None and actions.shape[:2] != (b, k - 1):
        raise ValueError(f"actions between {k} context frames must have shape ({b}, {k - 1}, A), "
                         f"got {tuple(actions.shape)}")
    h_all, skips_all = model.encode_frames(context)  # (B, K, g_dim)
    state = State(x_prev=context[:, -1], skips=[s[:, -1] for s in skips_all],
                  predictor=_zero_lstm(model.predictor, b, h_all),
                  posterior=_zero_lstm(model.posterior, b, h_all), prior=_zero_lstm(model.prior, b, h_all))
    for t in range(1, k):
        action = None if actions is None else actions[:, t - 1]
        state = condition(model, state, h_all[:, t - 1], h_all[:, t], action)
    return state


def observe_frame(model: SVG, state: State, frame: torch.Tensor, action: torch.Tensor | None = None) -> State:
    """Condition an existing state on one more real frame (B, C, H, W), reached by action (B, A)."""
    h, skips = model.encoder(torch.cat([state.x_prev, frame]))
    b = state.batch
    state = condition(model, state, h[:b], h[b:], action)
    return replace(state, x_prev=frame, skips=[s[b:] for s in skips])


def step(model: SVG, state: State, eps: torch.Tensor | None, action: torch.Tensor | None = None
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, State]:
    """Predict one frame: encode x_prev, sample z from the prior with eps (B, z_dim), decode; an
    action-conditioned model takes the action (B, A) applied between x_prev and the next frame.

    Returns x_next (B, C, H, W), the prior's mu and logvar (B, z_dim), and the new state.
    """
    cfg = model.cfg
    h, new_skips = model.encoder(state.x_prev)
    a = model.action_input(action, h.shape[0])
    skips = new_skips if cfg.last_frame_skip else state.skips
    prior, inp = state.prior, torch.cat([h, a], dim=1)
    mu = logvar = h.new_zeros(h.shape[0], cfg.z_dim if cfg.has_latent else 0)
    if model.prior is not None:
        z, mu, logvar, *prior = model.prior(model.prior_input(h, a), *state.prior, eps)
        prior = tuple(prior)
    elif cfg.has_latent:
        z = eps  # SVG-FP: z ~ N(0, I)
    if cfg.has_latent:
        inp = torch.cat([h, z, a], dim=1)
    g, *pred = model.predictor(inp, *state.predictor)
    x_next = model.decoder(g, skips)
    return x_next, mu, logvar, replace(state, x_prev=x_next, skips=skips, predictor=tuple(pred), prior=prior)


def sample(model: SVG, state: State, n_samples: int = 1, horizon: int | None = None,
           eps: torch.Tensor | None = None, generator: torch.Generator | None = None,
           actions: torch.Tensor | None = None) -> Rollout:
    """Draw n_samples futures from a state of batch B (left unchanged), as the runtime's `sample`.

    Without actions: frames (B, N, horizon, C, H, W) and eps (B, N, horizon, z_dim). With K candidate
    action sequences actions (B, K, horizon, A): frames (B, K, N, horizon, C, H, W), eps
    (B, K, N, horizon, z_dim). eps fixes the noise (drawn from `generator` if None). Call under
    `eval_mode`."""
    b, z_dim = state.batch, model.cfg.z_dim if model.cfg.has_latent else 0
    if actions is not None:
        if actions.ndim != 4 or actions.shape[0] != b:
            raise ValueError(f"actions must have shape ({b}, K, horizon, A), got {tuple(actions.shape)}")
        horizon = horizon or actions.shape[2]
        lead = (b, actions.shape[1], n_samples)
    else:
        lead = (b, n_samples)
    if horizon is None or horizon < 1:
        raise ValueError(f"need horizon >= 1, got {horizon}")
    shape = (*lead, horizon, z_dim)
    if eps is None:
        eps = torch.randn(shape, generator=generator).to(state.predictor[0].device)
    if tuple(eps.shape) != shape:
        raise ValueError(f"eps must have shape {shape}, got {tuple(eps.shape)}")
    m = math.prod(lead[1:])  # rollouts per batch entry
    state = fork(state, m)
    acts = None
    if actions is not None:  # (B, K, H, A) -> (B*K*N, H, A), the N samples of a sequence adjacent
        acts = actions.float().repeat_interleave(n_samples, dim=1).flatten(0, 1)
    eps_flat = eps.reshape(b * m, horizon, z_dim)
    frames, mus, logvars = [], [], []
    for t in range(horizon):
        x, mu, logvar, state = step(model, state, eps_flat[:, t], None if acts is None else acts[:, t])
        frames.append(x)
        mus.append(mu)
        logvars.append(logvar)
    mu, logvar = torch.stack(mus, 1).view(*lead, horizon, z_dim), torch.stack(logvars, 1).view(*lead, horizon, z_dim)
    sigma = torch.exp(0.5 * logvar) if model.cfg.has_prior else torch.ones_like(logvar)
    return Rollout(frames=torch.stack(frames, 1).view(*lead, horizon, *state.x_prev.shape[1:]),
                   mu=mu, sigma=sigma, eps=eps)


def generate(model: SVG, context: torch.Tensor, horizon: int, n_samples: int = 1,
             eps: torch.Tensor | None = None, generator: torch.Generator | None = None,
             context_actions: torch.Tensor | None = None, actions: torch.Tensor | None = None) -> Rollout:
    """`observe` the context (B, K, C, H, W) (and its K - 1 context_actions) and `sample` futures
    in eval mode: the one-call form used by training samples, evaluation and parity checks."""
    with eval_mode(model):
        state = observe(model, context, context_actions)
        return sample(model, state, n_samples, horizon, eps, generator, actions)
