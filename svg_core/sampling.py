"""Generation with explicit state: observe real frames, fork into samples, step the prior.

The same loop runs in the exported runtime (svg_runtime) over ONNX graphs; for the same context
and eps both give the same frames. Conditioning uses the posterior mean (eps = 0), so the state
after observing a context is deterministic and all randomness lies in the future's eps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from svg_core.model import SVG

LSTMState = tuple[torch.Tensor, torch.Tensor]  # h, c: (B, n_layers, rnn_size) each


@dataclass
class State:
    """Everything a rollout carries between steps; every tensor is batch-first."""

    x_prev: torch.Tensor  # (B, C, H, W) last frame, real or predicted
    skips: list[torch.Tensor]  # encoder features of the last real frame (or of x_prev with last_frame_skip)
    predictor: LSTMState
    posterior: LSTMState | None
    prior: LSTMState | None

    @property
    def batch(self) -> int:
        return self.x_prev.shape[0]


@dataclass
class Generation:
    """Sampled futures and the prior's Gaussian at each step.

    frames (B, N, T, C, H, W) in [0, 1]; mu, logvar (B, N, T, z_dim) (zeros for FP, empty for det).
    """

    frames: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor

    @property
    def sigma(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)


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
    def pair(s: LSTMState | None) -> LSTMState | None:
        return None if s is None else (fn(s[0]), fn(s[1]))

    return State(x_prev=fn(state.x_prev), skips=[fn(s) for s in state.skips], predictor=pair(state.predictor),
                 posterior=pair(state.posterior), prior=pair(state.prior))


def fork(state: State, n_samples: int) -> State:
    """Repeat each batch entry n_samples times: batch B -> B * N, samples of one video adjacent."""
    return _map(state, lambda t: t.repeat_interleave(n_samples, dim=0))


def clone(state: State) -> State:
    return _map(state, torch.clone)


def _zero_lstm(module, batch: int, like: torch.Tensor) -> LSTMState | None:
    return None if module is None else module.zero_state(batch, like.device, like.dtype)


def condition(model: SVG, state: State, h_prev: torch.Tensor, h_next: torch.Tensor) -> State:
    """Step posterior (mean), prior and predictor on one observed transition."""
    inp, post, prior = h_prev, state.posterior, state.prior
    if model.posterior is not None:
        zero = h_prev.new_zeros(h_prev.shape[0], model.cfg.z_dim)
        z, _, _, *post = model.posterior(h_next, *state.posterior, zero)
        if model.prior is not None:
            _, _, _, *prior = model.prior(h_prev, *state.prior, zero)
        inp = torch.cat([h_prev, z], dim=1)
    _, *pred = model.predictor(inp, *state.predictor)
    return replace(state, predictor=tuple(pred), posterior=post and tuple(post), prior=prior and tuple(prior))


def observe(model: SVG, context: torch.Tensor) -> State:
    """Condition on real frames context (B, K, C, H, W), K >= 1; encodes all K frames in one call."""
    b, k = context.shape[:2]
    h_all, skips_all = model.encode_frames(context)  # (B, K, g_dim)
    state = State(x_prev=context[:, -1], skips=[s[:, -1] for s in skips_all],
                  predictor=_zero_lstm(model.predictor, b, h_all),
                  posterior=_zero_lstm(model.posterior, b, h_all), prior=_zero_lstm(model.prior, b, h_all))
    for t in range(1, k):
        state = condition(model, state, h_all[:, t - 1], h_all[:, t])
    return state


def observe_step(model: SVG, state: State, x_next: torch.Tensor) -> State:
    """Condition an existing state on one more real frame x_next (B, C, H, W)."""
    h, skips = model.encoder(torch.cat([state.x_prev, x_next]))
    b = state.batch
    state = condition(model, state, h[:b], h[b:])
    return replace(state, x_prev=x_next, skips=[s[b:] for s in skips])


def step(model: SVG, state: State, eps: torch.Tensor | None
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, State]:
    """Predict one frame: encode x_prev, sample z from the prior with eps (B, z_dim), decode.

    Returns x_next (B, C, H, W), the prior's mu and logvar (B, z_dim), and the new state.
    """
    cfg = model.cfg
    h, new_skips = model.encoder(state.x_prev)
    skips = new_skips if cfg.last_frame_skip else state.skips
    prior, inp = state.prior, h
    mu = logvar = h.new_zeros(h.shape[0], cfg.z_dim if cfg.has_latent else 0)
    if model.prior is not None:
        z, mu, logvar, *prior = model.prior(h, *state.prior, eps)
        prior = tuple(prior)
    elif cfg.has_latent:
        z = eps  # SVG-FP: z ~ N(0, I)
    if cfg.has_latent:
        inp = torch.cat([h, z], dim=1)
    g, *pred = model.predictor(inp, *state.predictor)
    x_next = model.decoder(g, skips)
    return x_next, mu, logvar, replace(state, x_prev=x_next, skips=skips, predictor=tuple(pred), prior=prior)


def generate(model: SVG, context: torch.Tensor, horizon: int, n_samples: int = 1,
             eps: torch.Tensor | None = None, generator: torch.Generator | None = None) -> Generation:
    """Condition on context (B, K, C, H, W) and sample n_samples futures of horizon frames each.

    eps (B, N, horizon, z_dim) fixes the randomness (drawn from `generator` if None).
    """
    b, z_dim = context.shape[0], model.cfg.z_dim if model.cfg.has_latent else 0
    if eps is None:
        eps = torch.randn(b, n_samples, horizon, z_dim, generator=generator).to(context.device)
    if eps.shape != (b, n_samples, horizon, z_dim):
        raise ValueError(f"eps must have shape {(b, n_samples, horizon, z_dim)}, got {tuple(eps.shape)}")
    with eval_mode(model):
        state = fork(observe(model, context), n_samples)
        frames, mus, logvars = [], [], []
        for t in range(horizon):
            x, mu, logvar, state = step(model, state, eps[:, :, t].flatten(0, 1))
            frames.append(x)
            mus.append(mu)
            logvars.append(logvar)
    shape = (b, n_samples, horizon)
    return Generation(frames=torch.stack(frames, 1).view(*shape, *context.shape[2:]),
                      mu=torch.stack(mus, 1).view(*shape, z_dim), logvar=torch.stack(logvars, 1).view(*shape, z_dim))
