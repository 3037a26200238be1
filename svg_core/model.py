"""The SVG network: encoder, posterior, prior, predictor and decoder, and the training loss.

SVG-LP learns the prior p(z_t | x_{1:t-1}); SVG-FP uses N(0, I); the deterministic baseline has no
latent. All recurrent state is explicit (see svg_core.lstm); the generation loop lives in
svg_core.sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from svg_core.backbones import Decoder, Encoder
from svg_core.config import ModelConfig, action_normalisation
from svg_core.lstm import GaussianLSTM, PredictorLSTM


def gaussian_kl(mu1: torch.Tensor, logvar1: torch.Tensor, mu2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mu1, exp(logvar1)) || N(mu2, exp(logvar2))) per element."""
    return 0.5 * (logvar2 - logvar1) + (logvar1.exp() + (mu1 - mu2) ** 2) / (2 * logvar2.exp()) - 0.5


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: conv/linear weights N(0, 0.02), BN weights N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@dataclass
class LossTerms:
    """One training step's loss and its parts (scalars), and the predicted frames (B, T-1, C, H, W)."""

    loss: torch.Tensor
    mse: torch.Tensor
    kld: torch.Tensor
    x_hat: torch.Tensor


def skip_source(t: int, n_past: int, last_frame_skip: bool) -> int:
    """Index of the frame whose encoder features feed the decoder when predicting frame t.

    The last conditioning frame (the paper), or the current input frame with last_frame_skip.
    (The authors' code used the second-to-last conditioning frame: edenton/svg#1.)
    """
    return t - 1 if last_frame_skip else min(t - 1, n_past - 1)


class SVG(nn.Module):
    """SVG-LP / SVG-FP / deterministic video predictor built from a ModelConfig."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        z = cfg.z_dim if cfg.has_latent else 0
        a_prior = cfg.action_dim if cfg.prior_takes_action else 0
        self.predictor = PredictorLSTM(cfg.g_dim + z + cfg.action_dim, cfg.g_dim, cfg.rnn_size, cfg.predictor_layers)
        self.posterior = GaussianLSTM(cfg.g_dim, cfg.z_dim, cfg.rnn_size, cfg.posterior_layers) if cfg.has_latent else None
        self.prior = GaussianLSTM(cfg.g_dim + a_prior, cfg.z_dim, cfg.rnn_size, cfg.prior_layers) if cfg.has_prior else None
        mean, std = action_normalisation(cfg)  # buffers, not weights: the config is their source
        self.register_buffer("action_mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("action_std", torch.tensor(std, dtype=torch.float32), persistent=False)
        self.apply(init_weights)

    def action_input(self, action: torch.Tensor | None, batch: int) -> torch.Tensor:
        """The normalised action (B, A) that joins the LSTMs' inputs, from one in the user's units.

        (B, 0) for an unconditional model; an error when the action is missing or not expected."""
        a_dim = self.cfg.action_dim
        if action is None:
            if a_dim:
                raise ValueError(f"this model is action-conditioned: pass an action of shape (B, {a_dim})")
            return self.action_mean.new_zeros(batch, 0)
        if not a_dim:
            raise ValueError("this model takes no actions (it was trained without them)")
        if action.shape != (batch, a_dim):
            raise ValueError(f"action must have shape {(batch, a_dim)}, got {tuple(action.shape)}")
        return (action.float() - self.action_mean) / self.action_std

    def prior_input(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The learned prior's input: h (B, g_dim), plus the normalised action (B, A) with action_prior."""
        return torch.cat([h, action], dim=1) if self.cfg.prior_takes_action else h

    def encode_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, T, C, H, W) -> h (B, T, g_dim), skips [(B, T, w, h, w)], in ONE encoder call."""
        b, t = x.shape[:2]
        h, skips = self.encoder(x.flatten(0, 1))
        return h.view(b, t, -1), [s.view(b, t, *s.shape[1:]) for s in skips]

    def training_loss(self, x: torch.Tensor, n_past: int, beta: float, eps: torch.Tensor | None = None,
                      actions: torch.Tensor | None = None, motion_weight: float = 0.0,
                      recon: str = "mse") -> LossTerms:
        """The authors' objective on a batch x (B, T, C, H, W) with teacher forcing.

        sum_t [ mean-pixel MSE(x_hat_t, x_t) + beta * KL(q_t || p_t) ], t = 1 .. T-1, KL summed over z
        and averaged over the batch. eps (B, T-1, z_dim) is the posterior noise (drawn if None);
        actions (B, T-1, A) in the user's units (action t is taken between frames t and t+1).
        motion_weight > 0 weighs each pixel's error by 1 + motion_weight * |x_t - x_{t-1}| (mean over
        channels) in the loss; the reported mse stays the plain one. recon "bce" replaces the per-pixel
        squared error by binary cross-entropy (targets in [0, 1]).
        """
        b, t_len = x.shape[:2]
        if self.cfg.has_actions and (actions is None or actions.shape[:2] != (b, t_len - 1)):
            got = None if actions is None else tuple(actions.shape)
            raise ValueError(f"this model needs actions of shape ({b}, {t_len - 1}, {self.cfg.action_dim}), got {got}")
        h_all, skips_all = self.encode_frames(x)  # (B, T, g_dim)
        gs, kls = self._unroll(h_all, eps, actions)  # (B, T-1, g_dim), (T-1) tensors of (B,)
        idx = torch.tensor([skip_source(t, n_past, self.cfg.last_frame_skip) for t in range(1, t_len)],
                           device=x.device)
        skips = [s[:, idx].flatten(0, 1) for s in skips_all]
        x_hat = self.decoder(gs.flatten(0, 1).to(skips[0].dtype), skips).view(b, t_len - 1, *x.shape[2:])
        sq_err = (x_hat.float() - x[:, 1:].float()) ** 2  # (B, T-1, C, H, W)
        mse = sq_err.mean(dim=(0, 2, 3, 4)).sum()
        err = sq_err if recon == "mse" else binary_cross_entropy(x_hat.float(), x[:, 1:].float())
        if motion_weight > 0:
            change = (x[:, 1:].float() - x[:, :-1].float()).abs().mean(dim=2, keepdim=True)  # (B, T-1, 1, H, W)
            err = err * (1 + motion_weight * change)
        rec = err.mean(dim=(0, 2, 3, 4)).sum()
        kld = torch.stack(kls).sum(0).mean() if kls else torch.zeros((), device=x.device)
        return LossTerms(loss=rec + beta * kld, mse=mse, kld=kld, x_hat=x_hat)

    def _unroll(self, h_all: torch.Tensor, eps: torch.Tensor | None, actions: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Step the LSTMs over the sequence; returns the predictor outputs and per-step KL (B,)."""
        cfg, b, t_len = self.cfg, h_all.shape[0], h_all.shape[1]
        h_all = h_all.float()
        pred_state = self.predictor.zero_state(b, h_all.device)
        post_state = self.posterior.zero_state(b, h_all.device) if self.posterior else None
        prior_state = self.prior.zero_state(b, h_all.device) if self.prior else None
        if cfg.has_latent and eps is None:
            eps = torch.randn(b, t_len - 1, cfg.z_dim, device=h_all.device)
        gs, kls = [], []
        for t in range(1, t_len):
            h_prev = h_all[:, t - 1]
            a = self.action_input(None if actions is None else actions[:, t - 1], b)  # (B, A)
            inp = torch.cat([h_prev, a], dim=1)
            if cfg.has_latent:
                z, mu, logvar, *post_state = self.posterior(h_all[:, t], *post_state, eps[:, t - 1])
                if self.prior is not None:
                    _, mu_p, logvar_p, *prior_state = self.prior(self.prior_input(h_prev, a), *prior_state,
                                                                 torch.zeros_like(z))
                else:
                    mu_p, logvar_p = torch.zeros_like(mu), torch.zeros_like(logvar)
                kls.append(gaussian_kl(mu.float(), logvar.float(), mu_p.float(), logvar_p.float()).sum(1))  # fp32 under autocast
                inp = torch.cat([h_prev, z, a], dim=1)
            g, *pred_state = self.predictor(inp, *pred_state)
            gs.append(g)
        return torch.stack(gs, dim=1), kls


def binary_cross_entropy(p: torch.Tensor, target: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """Per-pixel -[y log p + (1 - y) log(1 - p)] with p kept off 0 and 1 (autocast-safe, unlike F's)."""
    return -(target * p.clamp_min(floor).log() + (1 - target) * (1 - p).clamp_min(floor).log())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
