"""Multi-process training: 2 gloo processes on CPU train exactly what one process trains.

The check is on gradients, through the real `svg train --nproc 2` path: after Adam steps the
checkpoint's exp_avg and exp_avg_sq are linear in the averaged gradients, so comparing them with
a single-process run compares the gradients (the parameters alone would not: Adam's first step
is about lr * sign(g)). BatchNorm runs in training mode with --sync-bn: without it each process
normalises over its own half of the batch and the runs differ (documented, not a bug).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from svg_core.batches import StepBatches, step_noise
from svg_core.checkpoint import load_checkpoint
from svg_core.config import ModelConfig, RunConfig, TrainConfig
from svg_core.distributed import (
    DistInfo,
    check_batch_split,
    rank_slice,
    torchrun_command,
)
from svg_core.errors import SVGError
from svg_core.model import SVG
from svg_core.train import train

torch.set_num_threads(1)


def tiny_run(**train_kw) -> RunConfig:
    model = ModelConfig(width=4, g_dim=16, z_dim=3, rnn_size=16)
    kw = dict(batch_size=4, n_past=2, n_future=2, steps=1, checkpoint_every=1, sample_every=1000,
              num_digits=1, log_every=1, seed=3, sync_bn=True)
    return RunConfig(model=model, train=TrainConfig(**{**kw, **train_kw}))


def biases_before_batchnorm(model: nn.Module) -> set[str]:
    """Names of conv biases followed by a BatchNorm: their gradient is zero in exact arithmetic."""
    names = set()
    for prefix, module in model.named_modules():
        children = list(module.named_children())
        for (name, conv), (_, bn) in zip(children, children[1:], strict=False):
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
                names.add(f"{prefix}.{name}.bias")
    return names


def test_ranks_split_the_global_batch_into_contiguous_slices() -> None:
    one = iter(StepBatches(3, 8))
    two = [iter(StepBatches(3, 8, rank=r, world_size=2)) for r in range(2)]
    for _ in range(2):
        assert next(one) == next(two[0]) + next(two[1])
    assert next(iter(StepBatches(0, 8, rank=3, world_size=4))) == [6, 7]
    noise = step_noise(1, 5, 8, 4, 3)
    assert noise.shape == (8, 4, 3) and torch.equal(noise, step_noise(1, 5, 8, 4, 3))
    assert not torch.equal(noise, step_noise(1, 6, 8, 4, 3))
    halves = [rank_slice(noise, DistInfo(rank=r, world_size=2)) for r in range(2)]
    assert torch.equal(torch.cat(halves), noise)
    with pytest.raises(SVGError, match="does not split evenly over 3 processes"):
        check_batch_split(8, DistInfo(rank=0, world_size=3))


def test_nproc_relaunches_through_torchrun_with_the_same_options(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from svg_cli.app import app

    launched = {}

    def fake_relaunch(nproc: int, args: list[str]) -> int:
        launched.update(nproc=nproc, args=args)
        return 0

    monkeypatch.setattr("svg_core.distributed.relaunch_with_torchrun", fake_relaunch)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    result = CliRunner().invoke(app, ["train", "--nproc", "2", "--out", str(tmp_path), "--steps", "3",
                                      "--sync-bn", "--amp", "bf16", "--resume"])
    assert result.exit_code == 0, result.output
    assert launched["nproc"] == 2
    assert launched["args"] == ["train", "--out", str(tmp_path), "--steps", "3", "--amp", "bf16", "--sync-bn",
                                "--resume"]
    cmd = torchrun_command(2, launched["args"])
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"] and "--nproc-per-node=2" in cmd


def test_fp16_needs_a_gpu() -> None:
    with pytest.raises(SVGError, match="fp16 needs a CUDA GPU"):
        TrainConfig(amp="fp16", device="cpu")


def test_two_gloo_processes_match_one_process_and_resume_across_n(tmp_path: Path) -> None:
    # step 1 on one process; step 2 resumed on two processes (torchrun, gloo, SyncBN) and on one
    single, multi = tmp_path / "single", tmp_path / "multi"
    train(single, tiny_run(steps=1), progress=False)
    shutil.copytree(single, multi)
    config = tmp_path / "run.json"
    config.write_text(json.dumps(tiny_run(steps=2).to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "svg_cli", "train", "--nproc", "2", "--config", str(config),
                           "--out", str(multi), "--resume"], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    train(single, tiny_run(steps=2), resume=True, progress=False)

    a, b = load_checkpoint(single), load_checkpoint(multi)
    assert a.step == b.step == 2 and b.config.train.sync_bn
    names = [name for name, _ in SVG(a.config.model).named_parameters()]  # optimizer ids follow this order
    zero_grad = biases_before_batchnorm(SVG(a.config.model))
    assert len(a.optimizer) == 3 * len(names) and zero_grad
    for pid, name in enumerate(names):
        for stat in ("exp_avg", "exp_avg_sq"):  # 0.1 g1 + 0.09 g2 and the same for g^2
            x, y = a.optimizer[f"{pid}.{stat}"], b.optimizer[f"{pid}.{stat}"]
            if name in zero_grad:  # BN removes a constant shift: 0 up to rounding in both runs
                ref = a.optimizer[f"{pid - 1}.{stat}"].abs().max()  # the same conv's weight
                assert x.abs().max() < 1e-4 * ref and y.abs().max() < 1e-4 * ref, name
            else:
                assert (x - y).norm() <= 1e-4 * x.norm(), f"{name} {stat}: {(x - y).norm() / x.norm():.2e}"
    for key in set(a.model) - zero_grad:  # weights and BatchNorm running statistics (over the global batch)
        torch.testing.assert_close(b.model[key], a.model[key], rtol=1e-4, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")
    metrics_a = [json.loads(line) for line in (single / "metrics.jsonl").read_text().splitlines()]
    metrics_b = [json.loads(line) for line in (multi / "metrics.jsonl").read_text().splitlines()]
    assert metrics_b[-1]["step"] == 2
    assert metrics_b[-1]["loss"] == pytest.approx(metrics_a[-1]["loss"], rel=1e-5)  # the global batch's loss
