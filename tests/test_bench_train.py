"""`svg bench --train`: the per-frame reference loop computes the same loss as the batched step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from svg_bench.train import per_frame_loss
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
                                      "--warmup", "0", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| 4 | per-frame | none |" in result.output and "| 4 | batched | bf16 |" in result.output
    rows = json.loads(out.read_text())
    assert [(r["loop"], r["amp"]) for r in rows] == [("per-frame", "none"), ("batched", "none"), ("batched", "bf16")]
    assert all(r["seq_per_s"] > 0 and r["seq_len"] == 15 for r in rows)


def test_cli_bench_needs_a_bundle_or_train(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench"])
    assert result.exit_code == 1 and "give an exported BUNDLE" in result.output
    try:
        import svg_bench.infer  # noqa: F401
    except ImportError:
        result = CliRunner().invoke(app, ["bench", str(tmp_path)])
        assert result.exit_code == 1 and "inference benchmark not available yet" in result.output
