"""Training: checkpoints round-trip bit-exactly, resume equals an uninterrupted run, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_runs import tiny_run as shared_tiny_run
from typer.testing import CliRunner

from svg_core.checkpoint import build_model, load_checkpoint, load_model, save_checkpoint
from svg_core.config import RunConfig, with_overrides
from svg_core.errors import SVGError
from svg_core.model import SVG
from svg_core.train import lr_at, read_metrics, train

torch.set_num_threads(1)


def tiny_run(**train_kw) -> RunConfig:
    return shared_tiny_run(**{"steps": 4, "checkpoint_every": 2, **train_kw})


def test_checkpoint_round_trip_is_bit_exact(tmp_path: Path) -> None:
    cfg = tiny_run()
    model = SVG(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.training_loss(torch.rand(2, 3, 1, 64, 64), 2, 1e-4).loss.backward()
    opt.step()
    save_checkpoint(tmp_path, model, cfg, step=7, optimizer=opt)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.step == 7 and ckpt.config == cfg
    restored = build_model(ckpt)
    for (name, a), b in zip(model.state_dict().items(), restored.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert (tmp_path / "config.json").exists()
    assert not list(tmp_path.glob(".tmp-*"))


def test_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    full = train(tmp_path / "full", tiny_run(steps=4), progress=False)
    train(tmp_path / "part", tiny_run(steps=2), progress=False)
    resumed = train(tmp_path / "part", tiny_run(steps=4), resume=True, progress=False)
    assert resumed.step == full.step == 4
    assert resumed.loss == full.loss
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "part")
    for name in a.model:
        assert torch.equal(a.model[name], b.model[name]), name
    for name in a.optimizer:
        assert torch.equal(a.optimizer[name], b.optimizer[name]), name
    metrics = read_metrics(tmp_path / "part")
    assert list(metrics["step"]) == [1, 2, 3, 4]
    assert (tmp_path / "full" / "samples" / "step_0000004.gif").exists()


def test_training_reduces_the_loss(tmp_path: Path) -> None:
    # from the paper's mid-grey start: with the output bias fix the loss starts near its floor already
    cfg = with_overrides(tiny_run(), steps=80, batch_size=4, checkpoint_every=100, init_output_bias=False)
    train(tmp_path, cfg, progress=False)
    loss = read_metrics(tmp_path)["loss"]
    assert loss[-5:].mean() < 0.5 * loss[:5].mean()


def test_lr_decay_falls_linearly_to_zero_over_the_runs_last_fraction(tmp_path: Path) -> None:
    cfg = with_overrides(tiny_run(), steps=10, lr=1e-3, lr_decay=0.4, log_every=1, checkpoint_every=100)
    assert [lr_at(s, cfg) for s in (0, 5, 6, 7, 9)] == pytest.approx([1e-3, 1e-3, 1e-3, 0.75e-3, 0.25e-3])
    assert lr_at(9, with_overrides(cfg, lr_decay=0.0)) == 1e-3  # the paper: constant
    train(tmp_path, cfg, progress=False)  # the rate the optimizer used at each step is in the metrics
    assert list(read_metrics(tmp_path)["lr"]) == pytest.approx([lr_at(s, cfg) for s in range(10)])
    with pytest.raises(SVGError, match=r"--lr-decay is a fraction of the run's steps, in \[0, 1\]; got 1.5"):
        with_overrides(cfg, lr_decay=1.5)


def test_output_starts_at_the_data_mean_not_mid_grey(tmp_path: Path) -> None:
    first = {}
    for fix in (False, True):
        train(tmp_path / str(fix), with_overrides(tiny_run(), steps=1, init_output_bias=fix), progress=False)
        first[fix] = read_metrics(tmp_path / str(fix))["mse"][0]
    assert first[True] < 0.3 * first[False]  # SM-MNIST: mean pixel ~0.03, so MSE ~0.03 instead of ~0.25


def test_existing_run_needs_resume_and_resume_needs_a_run(tmp_path: Path) -> None:
    train(tmp_path, tiny_run(steps=1), progress=False)
    with pytest.raises(SVGError, match="pass --resume"):
        train(tmp_path, tiny_run(steps=2), progress=False)
    with pytest.raises(SVGError, match="no checkpoint"):
        train(tmp_path / "new", tiny_run(steps=2), resume=True, progress=False)


def test_corrupt_and_incompatible_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    cfg = tiny_run()
    path = save_checkpoint(tmp_path, SVG(cfg.model), cfg, step=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SVGError, match="corrupt"):
        load_model(tmp_path)
    # a checkpoint whose weights do not fit its config (e.g. edited by hand)
    other = with_overrides(cfg, width=8)
    save_checkpoint(tmp_path, SVG(other.model), cfg, step=1)
    with pytest.raises(SVGError, match="do not match its config"):
        load_model(tmp_path)
    with pytest.raises(SVGError, match="no checkpoint at"):
        load_model(tmp_path / "missing")
    (tmp_path / "not.safetensors").write_text("hello")
    with pytest.raises(SVGError, match="corrupt or not a safetensors"):
        load_checkpoint(tmp_path / "not.safetensors")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    train(tmp_path, tiny_run(steps=2), progress=False)
    good = load_checkpoint(tmp_path)
    real_loss = SVG.training_loss

    def diverging(self, *args, **kwargs):
        terms = real_loss(self, *args, **kwargs)
        terms.loss = terms.loss * float("nan")
        return terms

    monkeypatch.setattr(SVG, "training_loss", diverging)
    with pytest.raises(SVGError, match="loss became nan at step 3"):
        train(tmp_path, tiny_run(steps=6), resume=True, progress=False)
    after = load_checkpoint(tmp_path)
    assert after.step == good.step == 2
    assert all(torch.equal(good.model[k], after.model[k]) for k in good.model)


def test_unknown_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SVGError, match="unknown dataset 'ucf'"):
        train(tmp_path, with_overrides(tiny_run(), dataset="ucf"), progress=False)


def test_cli_train_and_errors(tmp_path: Path) -> None:
    from svg_cli.app import app

    runner = CliRunner()
    args = ["train", "--out", str(tmp_path / "run"), "--preset", "smmnist-small", "--width", "4", "--steps", "2",
            "--batch-size", "2", "--num-digits", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "step 2" in result.output and (tmp_path / "run" / "checkpoint.safetensors").exists()
    saved = load_checkpoint(tmp_path / "run").config.train  # the preset's recipe, then the flags
    assert (saved.recon, saved.lr_decay, saved.steps) == ("bce", 0.4, 2)
    flags = runner.invoke(app, [*args[:2], str(tmp_path / "run2"), *args[3:], "--recon", "mse", "--lr-decay", "0"])
    assert flags.exit_code == 0, flags.output
    assert load_checkpoint(tmp_path / "run2").config.train.recon == "mse"
    bad = runner.invoke(app, [*args[:2], str(tmp_path / "x"), *args[3:], "--lr-decay", "2"])
    assert bad.exit_code == 1 and "--lr-decay is a fraction of the run's steps" in bad.output
    bad = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--model", "gan"], env={"COLUMNS": "250"})
    assert bad.exit_code == 2 and "'gan' is not one of 'lp', 'fp', 'det'" in bad.output
    bad = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--image-size", "100"])
    assert bad.exit_code == 1 and "image size 100 is not supported" in bad.output
    bad = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--digits", str(tmp_path / "empty")])
    assert bad.exit_code == 1 and "--digits bundled" in bad.output
