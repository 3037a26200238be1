"""Training throughput: the batched training step against a per-frame loop like the authors' code.

The batched step (SVG.training_loss) encodes all B*T frames in one encoder call and decodes all
B*(T-1) predictions in one decoder call; only the LSTMs step through time. The reference loop
does what edenton/svg's train_svg_lp.py does: per frame, the encoder runs on x_{t-1} and again
on x_t (twice per frame), and the decoder runs once per frame. Both do forward, backward and an
Adam step on the same model and random frames (data loading is not timed).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from svg_core.config import ModelConfig
from svg_core.model import SVG, gaussian_kl
from svg_core.step import TrainingStep, amp_context

LOOPS = ("per-frame", "batched")
TWEAKS = ("none", "channels_last", "compile")  # the batched step as the training loop's options set it


def per_frame_loss(model: SVG, x: torch.Tensor, n_past: int, beta: float, eps: torch.Tensor) -> torch.Tensor:
    """The authors' LP objective, computed their way: x (B, T, C, H, W), eps (B, T-1, z_dim)."""
    b, t_len = x.shape[:2]
    pred = model.predictor.zero_state(b, x.device)
    post = model.posterior.zero_state(b, x.device)
    prior = model.prior.zero_state(b, x.device)
    mse, kld, skips = 0.0, 0.0, None
    for t in range(1, t_len):
        h, frame_skips = model.encoder(x[:, t - 1])  # (B, g_dim)
        h_target, _ = model.encoder(x[:, t])  # the second encoder call of the authors' code
        if model.cfg.last_frame_skip or t <= n_past:  # skips of the last conditioning frame (the
            skips = frame_skips  # authors' `t < n_past` took the second-to-last: edenton/svg#1)
        z, mu, logvar, *post = model.posterior(h_target.float(), *post, eps[:, t - 1])
        _, mu_p, logvar_p, *prior = model.prior(h.float(), *prior, torch.zeros_like(z))
        g, *pred = model.predictor(torch.cat([h.float(), z], dim=1), *pred)
        x_hat = model.decoder(g.to(skips[0].dtype), skips)  # (B, C, H, W)
        mse = mse + ((x_hat.float() - x[:, t]) ** 2).mean()
        kld = kld + gaussian_kl(mu.float(), logvar.float(), mu_p.float(), logvar_p.float()).sum(1).mean()
    return mse + beta * kld


@dataclass
class TrainBenchRow:
    """Throughput of one training-step variant."""

    width: int
    loop: str
    amp: str
    tweak: str
    batch_size: int
    seq_len: int
    ms_per_step: float
    seq_per_s: float


def bench_train_steps(width: int, variants: list[tuple[str, str, str]], *, batch_size: int = 16, n_past: int = 5,
                      n_future: int = 10, steps: int = 3, warmup: int = 1, device: str = "cpu",
                      seed: int = 0) -> list[TrainBenchRow]:
    """Median step time of each (loop, amp, tweak) variant of an SVG-LP DCGAN-64 at `width`.

    The variants take turns step by step, so that a load change on a shared machine hits all alike.
    """
    for loop, _, tweak in variants:
        if loop not in LOOPS:
            raise ValueError(f"unknown loop {loop!r}: choose one of {', '.join(LOOPS)}")
        if tweak not in TWEAKS or (tweak != "none" and loop != "batched"):
            raise ValueError(f"tweak {tweak!r} needs the batched loop and one of {', '.join(TWEAKS)}")
    fns = [make_train_step(width, loop, batch_size=batch_size, n_past=n_past, n_future=n_future, amp=amp,
                           device=device, seed=seed, tweak=tweak) for loop, amp, tweak in variants]
    times: list[list[float]] = [[] for _ in variants]
    for i in range(warmup + steps):
        for fn, spent in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= warmup:
                spent.append(time.perf_counter() - start)
    rows = []
    for (loop, amp, tweak), spent in zip(variants, times, strict=True):
        ms = sorted(spent)[len(spent) // 2] * 1000
        rows.append(TrainBenchRow(width, loop, amp, tweak, batch_size, n_past + n_future, round(ms, 1),
                                  round(batch_size / (ms / 1000), 2)))
    return rows


def make_train_step(width: int, loop: str, *, batch_size: int = 16, n_past: int = 5, n_future: int = 10,
                    amp: str = "none", device: str = "cpu", seed: int = 0, beta: float = 1e-4, tweak: str = "none"):
    """A closure running one training step (forward, backward, Adam) on fixed random frames.

    tweak "channels_last" or "compile" sets up the batched step as `svg train --channels-last` or
    `--compile` does (NHWC weights; torch.compile of the loss module, compiled on the first call)."""
    torch.manual_seed(seed)
    model = SVG(ModelConfig(width=width)).to(device).train()
    if tweak == "channels_last":
        model.to(memory_format=torch.channels_last)
    loss_module = TrainingStep(model, n_past, beta)
    batched = torch.compile(loss_module) if tweak == "compile" else loss_module
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.9, 0.999))
    t_len = n_past + n_future
    x = torch.rand(batch_size, t_len, 1, 64, 64, device=device)  # (B, T, C, H, W)
    eps = torch.randn(batch_size, t_len - 1, model.cfg.z_dim, device=device)
    autocast = amp_context(amp, device)  # the training loop's own autocast

    def step() -> torch.Tensor:
        with autocast:
            if loop == "batched":
                loss = batched(x, eps)[0]
            else:
                loss = per_frame_loss(model, x, n_past, beta, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def run_train_bench(widths: tuple[int, ...] = (64, 16), *, batch_size: int = 16, steps: int = 3, warmup: int = 1,
                    amps: tuple[str, ...] = ("none", "bf16"), tweaks: tuple[str, ...] = (),
                    device: str = "cpu") -> list[TrainBenchRow]:
    """Per width: the per-frame loop (fp32), the batched step under each amp mode, and the last amp
    mode's batched step with each tweak (channels_last, compile)."""
    variants = [("per-frame", "none", "none")] + [("batched", amp, "none") for amp in amps]
    variants += [("batched", amps[-1], tweak) for tweak in tweaks]
    rows = []
    for width in widths:
        rows += bench_train_steps(width, variants, batch_size=batch_size, steps=steps, warmup=warmup, device=device)
    return rows


def format_table(rows: list[TrainBenchRow]) -> str:
    """A Markdown table with the speed-up over the per-frame loop of the same width."""
    base = {r.width: r.seq_per_s for r in rows if r.loop == "per-frame"}
    lines = ["| width | loop | amp | tweak | ms/step | seq/s | vs per-frame |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r.seq_per_s / base[r.width]:.2f}x" if r.width in base else "-"
        lines.append(f"| {r.width} | {r.loop} | {r.amp} | {r.tweak} | {r.ms_per_step:.0f} | {r.seq_per_s:.2f} | {ratio} |")
    return "\n".join(lines)


def rows_as_dicts(rows: list[TrainBenchRow]) -> list[dict]:
    return [asdict(r) for r in rows]
