"""Recurrent cells with explicit state: every call takes (h, c) and returns the new (h, c).

State tensors have shape (B, n_layers, hidden): batch first, so that exported graphs have a
dynamic axis 0 everywhere. The LSTM cell is written as one matmul per input plus pointwise ops
(the LSTMCell form), which exports to ONNX as Gemm + pointwise and imports into TensorRT
without a loop.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LSTMCell(nn.Module):
    """One LSTM layer; parameter names and gate order (i, f, g, o) match torch.nn.LSTMCell."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gates = torch.addmm(self.bias_ih, x, self.weight_ih.t()) + torch.addmm(self.bias_hh, h, self.weight_hh.t())
        i, f, g, o = gates.chunk(4, dim=1)
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_next = torch.sigmoid(o) * torch.tanh(c_next)
        return h_next, c_next


class StackedLSTM(nn.Module):
    """Linear embed -> n LSTM layers; returns the top layer's output and the new state."""

    def __init__(self, input_size: int, hidden_size: int, n_layers: int):
        super().__init__()
        self.n_layers, self.hidden_size = n_layers, hidden_size
        self.embed = nn.Linear(input_size, hidden_size)
        self.cells = nn.ModuleList([LSTMCell(hidden_size, hidden_size) for _ in range(n_layers)])

    def run(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, in), h/c (B, L, H) -> top output (B, H), h'/c' (B, L, H)."""
        out = self.embed(x)
        hs, cs = [], []
        for layer, cell in enumerate(self.cells):
            h_l, c_l = cell(out, h[:, layer], c[:, layer])
            hs.append(h_l)
            cs.append(c_l)
            out = h_l
        return out, torch.stack(hs, dim=1), torch.stack(cs, dim=1)

    def zero_state(self, batch: int, device: torch.device | None = None,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (batch, self.n_layers, self.hidden_size)
        return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)


class PredictorLSTM(StackedLSTM):
    """Frame predictor: [h_{t-1}, z_t] -> g_t = tanh(Linear(top)) (B, g_dim)."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int, n_layers: int):
        super().__init__(input_size, hidden_size, n_layers)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, h, c = self.run(x, h, c)
        return torch.tanh(self.head(out)), h, c


class GaussianLSTM(StackedLSTM):
    """Posterior or prior: h -> z = mu + eps * exp(logvar / 2), with eps given by the caller."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int, n_layers: int):
        super().__init__(input_size, hidden_size, n_layers)
        self.mu_head = nn.Linear(hidden_size, output_size)
        self.logvar_head = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, eps: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns z, mu, logvar (each (B, z_dim)) and the new h, c."""
        out, h, c = self.run(x, h, c)
        mu, logvar = self.mu_head(out), self.logvar_head(out)
        z = mu + eps * torch.exp(0.5 * logvar)
        return z, mu, logvar, h, c
