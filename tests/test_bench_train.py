"""`svg bench --train`: the per-frame reference loop computes the same loss as the batched step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from svg_bench.train import bench_train_steps, make_train_step, per_frame_loss
from svg_cli.app import app
from svg_core.config import ModelConfig
from svg_core.model import SVG

torch.set_num_threads(1)


@pytest.mark.parametrize("last_frame_skip", [False, True])
def test_per_frame_loop_computes_the_batched_loss(last_frame_skip: bool) -> None:
    # BatchNorm in eval mode: in training mode the two take statistics over B and B*T frames
    torch.manual_seed(0)
    model = SVG(ModelConfig(width=4, g_dim=16, z_dim=3, rnn_size=16, last_frame_skip=last_frame_skip)).eval()
    x, eps = torch.rand(3, 6, 1, 64, 64), torch.randn(3, 5, 3)
    batched = model.training_loss(x, 3, 1e-2, eps).loss
    torch.testing.assert_close(per_frame_loss(model, x, 3, 1e-2, eps), batched, rtol=1e-5, atol=1e-7)


def test_cli_bench_train_reports_a_table(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "--train", "--width", "4", "--batch-size", "2", "--steps", "1",
                                      "--warmup", "0", "--channels-last", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| 4 | per-frame | none | none |" in result.output and "| 4 | batched | bf16 | channels_last |" in result.output
    rows = json.loads(out.read_text())
    assert [(r["loop"], r["amp"], r["tweak"]) for r in rows] == [
        ("per-frame", "none", "none"), ("batched", "none", "none"), ("batched", "bf16", "none"),
        ("batched", "bf16", "channels_last")]
    assert all(r["seq_per_s"] > 0 and r["seq_len"] == 15 for r in rows)


def test_channels_last_step_computes_the_same_loss_and_compile_needs_an_untimed_warmup() -> None:
    # the tweaked step is the same training step: same weights, frames and loss after one Adam step
    plain = make_train_step(4, "batched", batch_size=2)
    nhwc = make_train_step(4, "batched", batch_size=2, tweak="channels_last")
    for _ in range(2):  # the first loss, and the one after an Adam step from the same gradients
        torch.testing.assert_close(nhwc(), plain(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="tweak 'compile' needs the batched loop"):
        bench_train_steps(4, [("per-frame", "none", "compile")], batch_size=2, steps=1, warmup=0)
    result = CliRunner().invoke(app, ["bench", "--train", "--width", "4", "--compile", "--warmup", "0"])
    assert result.exit_code == 1 and "give --warmup 1 or more" in result.output


def test_cli_bench_needs_a_bundle_or_train(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench"])
    assert result.exit_code == 1 and "give an exported BUNDLE" in result.output
    try:
        import svg_bench.infer  # noqa: F401
    except ImportError:
        result = CliRunner().invoke(app, ["bench", str(tmp_path)])
        assert result.exit_code == 1 and "inference benchmark not available yet" in result.output
