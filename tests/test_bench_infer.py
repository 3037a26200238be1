"""`svg bench BUNDLE`: the inference benchmark's report (no timing assertions) and its FLOP count."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from bundle_fixtures import TINY, get_bundle
from typer.testing import CliRunner

from svg_bench.flops import onnx_flops
from svg_bench.infer import InferBenchOptions, format_table, run_bench
from svg_cli.app import app
from svg_core.errors import SVGError

runner = CliRunner()


@pytest.fixture(scope="module")
def lp(tmp_path_factory):
    torch.set_num_threads(1)
    return get_bundle(tmp_path_factory, "lp")


def dcgan_lp_step_flops(width: int, g_dim: int, z_dim: int, rnn_size: int, channels: int = 1,
                        predictor_layers: int = 2, prior_layers: int = 1) -> int:
    """FLOPs of one SVG-LP DCGAN-64 sampling step for one frame, written out layer by layer."""
    widths = [width, 2 * width, 4 * width, 8 * width]
    macs, c_in, size = 0, channels, 64
    for w in widths:  # encoder: 4x4 stride-2 convolutions, each output pixel sees c_in * 16 inputs
        size //= 2
        macs += size * size * w * c_in * 16
        c_in = w
    macs += g_dim * widths[-1] * 16  # head: 4x4 -> 1x1
    macs += g_dim * widths[-1] * 16  # decoder stem: 1x1 -> 4x4
    size = 4
    outs = [widths[2], widths[1], widths[0], channels]
    for w, c_out in zip(reversed(widths), outs, strict=True):  # transposed convs on [x, skip]
        macs += size * size * (2 * w) * c_out * 16  # every input pixel spreads over a 4x4 patch
        size *= 2
    lstm = lambda n_in, n_layers: n_in * rnn_size + n_layers * 2 * rnn_size * 4 * rnn_size  # noqa: E731
    macs += lstm(g_dim, prior_layers) + 2 * rnn_size * z_dim  # prior: embed, cells, mu and logvar heads
    macs += lstm(g_dim + z_dim, predictor_layers) + rnn_size * g_dim  # predictor: embed, cells, head
    return 2 * macs


def test_flops_are_counted_from_the_graph(lp):
    expected = dcgan_lp_step_flops(**TINY)
    step = lp.path / "step.onnx"
    assert sum(onnx_flops(step, 1).values()) == expected
    assert sum(onnx_flops(step, 7).values()) == 7 * expected
    assert sum(onnx_flops(lp.path / "encoder.onnx", 3).values()) < expected  # part of the step only


def test_report_fields_and_speedup(lp):
    report = run_bench(InferBenchOptions(bundles=(lp.path,), batches=(1, 3), steps=2, rounds=1, warmup=1,
                                         peak=False, threads=1))
    assert [(r.backend, r.batch) for r in report.results] == [(b, n) for n in (1, 3) for b in ("torch", "ort", "ort-cells")]
    expected = dcgan_lp_step_flops(**TINY)
    assert report.flops_per_frame["onnx"] == report.flops_per_frame["torch"] == expected  # FlopCounterMode agrees
    for r in report.results:
        assert r.steps == 2 and 0 < r.median_ms <= r.p90_ms
        assert r.flops_per_step == expected * r.batch and r.gflops > 0
        assert r.speedup_vs_torch is not None and r.speedup_vs_torch > 0
        assert r.pct_fp32_peak is None  # no peak measured
    assert all(r.speedup_vs_torch == 1.0 for r in report.results if r.backend == "torch")
    assert {s["backend"] for s in report.skipped} == {"ort-cuda", "trt"}  # this CPU machine
    table = format_table(report)
    assert table.splitlines()[0].startswith("| backend | batch | median ms/step | p90 ms | frames/s | vs torch")
    assert len(table.splitlines()) == 2 + len(report.results)


def test_cli_table_and_json(lp, tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", str(lp.path), "--batch", "2", "--steps", "2", "--threads", "1",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| backend | batch |" in result.output and "matmul peak GFLOP/s" in result.output
    assert "skipped trt: bundle has no TensorRT engines" in result.output
    data = json.loads(out.read_text())
    assert data["peak_gflops"]["fp32"] > 0 and data["peak_gflops"]["bf16"] > 0
    rows = {r["backend"]: r for r in data["results"]}
    assert set(rows) == {"torch", "ort", "ort-cells"}
    assert all(r["speedup_vs_torch"] > 0 and r["pct_fp32_peak"] > 0 for r in rows.values())
    assert data["machine"]["load_avg_before"] and "other_processes_cpu_pct" in data["machine"]


def test_without_checkpoint_torch_is_skipped(lp, tmp_path):
    report = run_bench(InferBenchOptions(bundles=(lp.path,), batches=(1,), steps=1, rounds=1, warmup=0, peak=False,
                                         cells=False, checkpoint=tmp_path / "gone.safetensors"))
    assert [r.backend for r in report.results] == ["ort"]
    assert report.results[0].speedup_vs_torch is None
    assert report.skipped[0]["backend"] == "torch" and "--checkpoint" in report.skipped[0]["reason"]


def test_errors(lp, tmp_path):
    with pytest.raises(SVGError, match="batch sizes must be >= 1"):
        InferBenchOptions(bundles=(lp.path,), batches=(0,))
    other = tmp_path / "other"
    shutil.copytree(lp.path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["model"]["rnn_size"] += 1
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SVGError, match="different model"):
        run_bench(InferBenchOptions(bundles=(lp.path, other), batches=(1,), peak=False))
    result = runner.invoke(app, ["bench", str(lp.path), "--batch", "1,x"])
    assert result.exit_code == 1 and "--batch-size takes comma-separated integers" in result.output
