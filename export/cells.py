"""Graph wrappers: each bundle graph as a module with flat tensor inputs and outputs.

Every cell takes its inputs positionally in the order `svg_runtime.manifest.graph_io` names them
and returns its outputs in that order, so exporter, runtime and parity checks cannot disagree on
names. The condition and step cells call svg_core.sampling's own functions: the exported loop is
the PyTorch loop, not a copy of it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from svg_core import sampling
from svg_core.model import SVG
from svg_export.phase_conv import matmul_stem_and_head
from svg_runtime.manifest import ACTION, GraphIO, ModelSpec, graph_io, skip_name, state_name

Named = dict[str, torch.Tensor]


def model_spec(model: SVG) -> ModelSpec:
    """The runtime's view of a model: its config plus the skip shapes, read off one encoder call."""
    cfg = model.cfg
    with sampling.eval_mode(model):
        _, skips = model.encoder(torch.zeros(2, cfg.channels, cfg.image_size, cfg.image_size))
    return ModelSpec(kind=cfg.kind, image_size=cfg.image_size, channels=cfg.channels, g_dim=cfg.g_dim,
                     z_dim=cfg.z_dim, rnn_size=cfg.rnn_size, posterior_layers=cfg.posterior_layers,
                     prior_layers=cfg.prior_layers, predictor_layers=cfg.predictor_layers,
                     last_frame_skip=cfg.last_frame_skip, skips=tuple(tuple(s.shape[1:]) for s in skips),
                     action_dim=cfg.action_dim, action_prior=cfg.action_prior, action_mean=cfg.action_mean,
                     action_std=cfg.action_std, action_names=cfg.action_names)


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d into the (transposed) convolution before it, in place.

    Returns the number of folded pairs. Exported graphs then hold no BatchNormalization node."""
    n_folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                seq[i + 1] = nn.Identity()
                n_folded += 1
    return n_folded


class _HalfEncoder(nn.Module):
    """fp16 convolutions behind fp32 inputs and outputs."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner.half()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, skips = self.inner(x.half())
        return h.float(), [s.float() for s in skips]


class _HalfDecoder(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner.half()

    def forward(self, g: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        return self.inner(g.half(), [s.half() for s in skips]).float()


def export_model(model: SVG, fp16: bool = False) -> SVG:
    """A copy of model ready for export: eval mode, BatchNorm folded, the decoder's stem and the
    encoder's head as matmuls, and with fp16 the encoder and decoder in half precision (the LSTMs,
    1% of the FLOPs and recurrent, stay fp32)."""
    out = copy.deepcopy(model).float().eval()
    fold_batchnorm(out)
    matmul_stem_and_head(out)  # ~6% of a step at batch 100 on the CPU (svg_export.phase_conv)
    if fp16:
        out.encoder = _HalfEncoder(out.encoder)
        out.decoder = _HalfDecoder(out.decoder)
    return out


def _encoder(model: SVG, n: Named) -> Named:
    h, skips = model.encoder(n["x"])
    return {"h": h, **{skip_name(i): s for i, s in enumerate(skips)}}


def _gaussian(graph: str) -> Callable[[SVG, Named], Named]:
    def run(model: SVG, n: Named) -> Named:
        state = getattr(sampling.State.from_named(n), graph)
        h = n["h"]
        if graph == "prior" and model.cfg.prior_takes_action:
            h = model.prior_input(h, model.action_input(n[ACTION], h.shape[0]))
        z, mu, logvar, h_next, c_next = getattr(model, graph)(h, *state, n["eps"])
        return {"z": z, "mu": mu, "logvar": logvar, state_name(graph, "h", True): h_next,
                state_name(graph, "c", True): c_next}
    return run


def _predictor(model: SVG, n: Named) -> Named:
    g, h, c = model.predictor(n["input"], *sampling.State.from_named(n).predictor)
    return {"g": g, state_name("predictor", "h", True): h, state_name("predictor", "c", True): c}


def _decoder(model: SVG, n: Named) -> Named:
    return {"x": model.decoder(n["g"], sampling.State.from_named(n).skips)}


def _condition(model: SVG, n: Named) -> Named:
    state = sampling.condition(model, sampling.State.from_named(n), n["h_prev"], n.get("h_next", n["h_prev"]),
                               n.get(ACTION))
    return state.to_named(next=True)


def _step(model: SVG, n: Named) -> Named:
    x_next, mu, logvar, state = sampling.step(model, sampling.State.from_named(n), n.get("eps"), n.get(ACTION))
    return {"x_next": x_next, "mu": mu, "logvar": logvar, **state.to_named(next=True)}


CELLS: dict[str, Callable[[SVG, Named], Named]] = {
    "encoder": _encoder, "posterior": _gaussian("posterior"), "prior": _gaussian("prior"),
    "predictor": _predictor, "decoder": _decoder, "condition": _condition, "step": _step,
}


class Cell(nn.Module):
    """One bundle graph of a model: forward(*inputs) -> outputs, both in graph_io order."""

    def __init__(self, model: SVG, spec: ModelSpec, graph: str):
        super().__init__()
        self.model, self.graph, self.spec = model, graph, spec
        self.io: GraphIO = graph_io(spec, graph)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.io.input_names, inputs, strict=True))
        outs = CELLS[self.graph](self.model, named)
        return tuple(outs[name] for name in self.io.output_names)
