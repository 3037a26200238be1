"""The network: shapes of every backbone, the KL, the loss, the generation loop's invariants."""

from __future__ import annotations

import pytest
import torch
from bundle_fixtures import make_responsive

from svg_core.config import ModelConfig, RunConfig, preset
from svg_core.errors import SVGError
from svg_core.model import SVG, binary_cross_entropy, gaussian_kl, skip_source
from svg_core.sampling import fork, generate, observe, observe_frame, step

torch.set_num_threads(1)


def tiny(**kw) -> ModelConfig:
    base = dict(width=4, g_dim=16, z_dim=3, rnn_size=16)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("backbone", ["dcgan", "vgg"])
@pytest.mark.parametrize("size", [64, 128])
def test_encoder_decoder_shapes(backbone: str, size: int) -> None:
    cfg = tiny(backbone=backbone, image_size=size, channels=3)
    model = SVG(cfg)
    h, skips = model.encoder(torch.rand(2, 3, size, size))
    assert h.shape == (2, 16)
    assert h.abs().max() <= 1  # tanh code
    n_stages = 4 if size == 64 else 5
    assert len(skips) == n_stages
    expected_hw = [size // 2 ** (i + 1) for i in range(n_stages)] if backbone == "dcgan" else \
        [size // 2 ** i for i in range(n_stages)]
    assert [s.shape[-1] for s in skips] == expected_hw
    x = model.decoder(h, skips)
    assert x.shape == (2, 3, size, size)
    assert 0 <= x.min() and x.max() <= 1  # sigmoid output


def test_paper_model_size_matches_authors_code() -> None:
    # The authors' DCGAN-64 SVG-LP for SM-MNIST has 12.6 M parameters (docs/design.md).
    n = sum(p.numel() for p in SVG(preset("smmnist").model).parameters())
    assert 12.5e6 < n < 12.7e6


def test_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    lv1, lv2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu1, (0.5 * lv1).exp()),
                                            torch.distributions.Normal(mu2, (0.5 * lv2).exp()))
    torch.testing.assert_close(gaussian_kl(mu1, lv1, mu2, lv2), ref, atol=1e-5, rtol=1e-5)


def test_skip_source_is_last_conditioning_frame() -> None:
    # predicting frames 1..7 with 3 conditioning frames (0, 1, 2)
    assert [skip_source(t, 3, False) for t in range(1, 8)] == [0, 1, 2, 2, 2, 2, 2]
    assert [skip_source(t, 3, True) for t in range(1, 8)] == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("kind", ["lp", "fp", "det"])
def test_loss_decreases_on_a_fixed_batch(kind: str) -> None:
    torch.manual_seed(0)
    model = SVG(tiny(kind=kind))
    x = torch.zeros(4, 5, 1, 64, 64)
    x[:, :, :, 20:30, 20:30] = 1.0  # a square
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        terms = model.training_loss(x, n_past=2, beta=1e-4)
        opt.zero_grad()
        terms.loss.backward()
        opt.step()
        losses.append(terms.loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert terms.x_hat.shape == (4, 4, 1, 64, 64)
    if kind == "det":
        assert terms.kld.item() == 0


def test_loss_is_the_papers_objective() -> None:
    torch.manual_seed(0)
    model = SVG(tiny(kind="fp"))
    x = torch.rand(3, 4, 1, 64, 64)
    eps = torch.randn(3, 3, 3)
    terms = model.training_loss(x, n_past=2, beta=0.5, eps=eps)
    mse = sum(torch.nn.functional.mse_loss(terms.x_hat[:, t], x[:, t + 1]) for t in range(3))
    torch.testing.assert_close(terms.mse, mse)
    torch.testing.assert_close(terms.loss, terms.mse + 0.5 * terms.kld)
    assert terms.kld > 0



def test_bce_reconstruction_is_binary_cross_entropy_and_keeps_the_gradient_on_dark_pixels() -> None:
    torch.manual_seed(0)
    model = SVG(tiny(kind="fp"))
    x = (torch.rand(3, 4, 1, 64, 64) > 0.9).float()
    eps = torch.randn(3, 3, 3)
    terms = model.training_loss(x, n_past=2, beta=0.5, eps=eps, recon="bce")
    bce = sum(torch.nn.functional.binary_cross_entropy(terms.x_hat[:, t], x[:, t + 1]) for t in range(3))
    torch.testing.assert_close(terms.loss, bce + 0.5 * terms.kld)
    mse = sum(torch.nn.functional.mse_loss(terms.x_hat[:, t], x[:, t + 1]) for t in range(3))
    torch.testing.assert_close(terms.mse, mse)  # the reported mse stays the plain one
    # d loss / d logit on a black pixel predicted at p: MSE gives 2p^2(1-p) (vanishes as p -> 0), BCE gives p
    logit = torch.full((1,), -4.0, requires_grad=True)  # p = 0.018: a faint haze
    p, target = torch.sigmoid(logit), torch.zeros(1)
    (g_mse,) = torch.autograd.grad(((p - target) ** 2).sum(), logit)
    (g_bce,) = torch.autograd.grad(binary_cross_entropy(torch.sigmoid(logit), target).sum(), logit)
    torch.testing.assert_close(g_bce, p.detach())
    assert g_bce > 25 * g_mse
    with pytest.raises(SVGError, match="unknown recon loss 'l1'"):
        preset("smmnist-small", recon="l1")

def _step_reference(model: SVG, context: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Frame-by-frame generation written directly from the paper, to check generate()."""
    h_all = [model.encoder(context[:, t]) for t in range(context.shape[1])]
    state_p = model.prior.zero_state(context.shape[0])
    state_q = model.posterior.zero_state(context.shape[0])
    state_g = model.predictor.zero_state(context.shape[0])
    zero = torch.zeros(context.shape[0], model.cfg.z_dim)
    for t in range(1, context.shape[1]):
        z, _, _, *state_q = model.posterior(h_all[t][0], *state_q, zero)
        _, _, _, *state_p = model.prior(h_all[t - 1][0], *state_p, zero)
        _, *state_g = model.predictor(torch.cat([h_all[t - 1][0], z], 1), *state_g)
    skips, x, frames = h_all[-1][1], context[:, -1], []
    for t in range(eps.shape[1]):
        h = model.encoder(x)[0]
        z, _, _, *state_p = model.prior(h, *state_p, eps[:, t])
        g, *state_g = model.predictor(torch.cat([h, z], 1), *state_g)
        x = model.decoder(g, skips)
        frames.append(x)
    return torch.stack(frames, 1)


def _responsive(cfg: ModelConfig) -> SVG:
    """The paper's init makes outputs that barely depend on their inputs: parity needs weights that respond."""
    torch.manual_seed(0)
    return make_responsive(SVG(cfg)).eval()


def test_generate_matches_a_frame_by_frame_reference() -> None:
    model = _responsive(tiny())
    context = torch.rand(2, 3, 1, 64, 64)
    eps = torch.randn(2, 1, 4, 3)
    out = generate(model, context, horizon=4, n_samples=1, eps=eps)
    with torch.no_grad():
        ref = _step_reference(model, context, eps[:, 0])
    torch.testing.assert_close(out.frames[:, 0], ref, atol=1e-5, rtol=1e-5)
    other_eps = generate(model, context, horizon=4, n_samples=1, eps=-eps).frames
    other_context = generate(model, context.flip(1), horizon=4, n_samples=1, eps=eps).frames
    assert (other_eps - out.frames).abs().max() > 1e-2  # the reference is tested on outputs that respond
    assert (other_context - out.frames).abs().max() > 1e-2
    assert out.mu.shape == (2, 1, 4, 3) and torch.all(out.sigma > 0)


def test_generate_samples_differ_and_fork_keeps_videos_adjacent() -> None:
    torch.manual_seed(0)
    model = SVG(tiny())
    with torch.no_grad():  # larger weights than the paper's init so that z visibly matters
        for p in model.parameters():
            p.normal_(0, 0.3)
    context = torch.rand(2, 3, 1, 64, 64)
    out = generate(model, context, horizon=3, n_samples=4, generator=torch.Generator().manual_seed(1))
    assert out.frames.shape == (2, 4, 3, 1, 64, 64)
    assert (out.frames[0, 0] - out.frames[0, 1]).abs().max() > 1e-5
    again = generate(model, context, horizon=3, n_samples=4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out.frames, again.frames, atol=0, rtol=0)
    assert model.training  # generate restored the mode
    with torch.inference_mode():
        state = fork(observe(model.eval(), context), 4)
    torch.testing.assert_close(state.x_prev[:4], context[:1, -1].expand(4, -1, -1, -1))


def test_observe_frame_equals_observing_the_whole_context() -> None:
    model = _responsive(tiny())
    context = torch.rand(2, 4, 1, 64, 64)
    eps = torch.randn(2, 3)
    with torch.inference_mode():
        whole = observe(model, context)
        stepwise = observe(model, context[:, :1])
        for t in range(1, 4):
            stepwise = observe_frame(model, stepwise, context[:, t])
        a, b = step(model, whole, eps)[0], step(model, stepwise, eps)[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():  # the early frames matter, or the equality would hold for any state
        late = step(model, observe(model, context[:, 2:]), eps)[0]
    assert (late - a).abs().max() > 1e-3


def test_det_model_is_deterministic_and_has_no_latent() -> None:
    model = SVG(tiny(kind="det"))
    assert model.posterior is None and model.prior is None
    context = torch.rand(1, 2, 1, 64, 64)
    out = generate(model, context, horizon=2, n_samples=2)
    torch.testing.assert_close(out.frames[:, 0], out.frames[:, 1])
    assert out.mu.shape[-1] == 0


@pytest.mark.parametrize("bad, message", [
    (dict(kind="gan"), "unknown model kind"),
    (dict(backbone="resnet"), "unknown backbone"),
    (dict(image_size=96), "image size 96 is not supported"),
])
def test_config_errors(bad: dict, message: str) -> None:
    with pytest.raises(SVGError, match=message):
        tiny(**bad)


def test_config_round_trip_and_unknown_option() -> None:
    cfg = preset("kth", kind="fp", batch_size=8)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.model.backbone == "vgg" and cfg.train.beta == 1e-6 and cfg.train.batch_size == 8
    with pytest.raises(SVGError, match="unknown ModelConfig option"):
        RunConfig.from_dict({"model": {"colour": 3}})
    with pytest.raises(SVGError, match="unknown preset"):
        preset("ucf101")
