"""`svg export --int8`: phase-convolution rewrite parity, the int8 bundle and its SSIM record."""

from __future__ import annotations

import copy
import json
import re
import shutil

import numpy as np
import onnx
import pytest
import torch
from bundle_fixtures import get_bundle
from typer.testing import CliRunner

from svg_bench.flops import onnx_flops
from svg_cli.app import app
from svg_core.errors import SVGError
from svg_core.evaluation.metrics import ssim
from svg_export.bundle import ExportOptions
from svg_export.phase_conv import MatmulConv2d, MatmulConvTranspose2d, PhaseConvTranspose2d
from svg_export.quantize import SSIM_THRESHOLD, quantize_bundle, synthetic_frames
from svg_runtime import Predictor
from svg_runtime.manifest import read_manifest, validate_manifest

runner = CliRunner()


@pytest.mark.parametrize("c_in, c_out, k, s, p, n", [
    (8, 5, 4, 2, 1, 4),  # DCGAN stages
    (6, 3, 4, 2, 1, 1),
    (8, 5, 3, 1, 1, 6),  # VGG's last layer (stride 1)
    (6, 3, 5, 3, 1, 4),
    (6, 3, 4, 2, 0, 3),
    (4, 2, 4, 1, 0, 1),  # a stem on a 1x1 input
])
def test_phase_conv_matches_conv_transpose(c_in, c_out, k, s, p, n):
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(c_in, c_out, k, s, p)
    x = torch.randn(3, c_in, n, n)
    torch.testing.assert_close(PhaseConvTranspose2d(conv)(x), conv(x), atol=1e-5, rtol=1e-5)


def test_phase_conv_refusals():
    with pytest.raises(ValueError, match="only square kernels"):
        PhaseConvTranspose2d(torch.nn.ConvTranspose2d(4, 2, 4, 2, 1, output_padding=1))
    with pytest.raises(ValueError, match="not a multiple of the stride"):
        PhaseConvTranspose2d(torch.nn.ConvTranspose2d(4, 2, 3, 2, 1))(torch.randn(1, 4, 3, 3))


def test_matmul_forms_match_and_check_shapes():
    torch.manual_seed(0)
    stem, head = torch.nn.ConvTranspose2d(6, 5, 4, 1, 0), torch.nn.Conv2d(5, 7, 4, 1, 0)
    g, f = torch.randn(3, 6, 1, 1), torch.randn(3, 5, 4, 4)
    torch.testing.assert_close(MatmulConvTranspose2d(stem)(g), stem(g), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(MatmulConv2d(head)(f), head(f), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="takes a 1x1 input"):
        MatmulConvTranspose2d(stem)(torch.randn(1, 6, 2, 2))
    with pytest.raises(ValueError, match="kernel's size"):
        MatmulConv2d(head)(torch.randn(1, 5, 8, 8))
    with pytest.raises(ValueError, match="pads"):
        MatmulConv2d(torch.nn.Conv2d(5, 7, 3, padding=1))


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    """The shared fp32 LP bundle, quantized the way `export_bundle(int8=True)` does after its fp32 stage
    (a full int8 export would repeat the fp32 one: seconds this suite does not need to spend)."""
    fp32 = get_bundle(tmp_path_factory, "lp")
    out = tmp_path_factory.mktemp("int8") / "bundle"
    shutil.copytree(fp32.path, out)
    manifest = quantize_bundle(fp32.model, out, copy.deepcopy(fp32.manifest), fp32.manifest["export"]["opset"])
    (out / "manifest.json").write_text(json.dumps(validate_manifest(manifest)))
    return fp32, out, manifest


def test_int8_bundle_and_its_record(int8):
    fp32, path, manifest = int8
    assert read_manifest(path) == manifest and manifest["precision"] == "int8"
    q = manifest["quantization"]
    assert q["passed"] and q["gate"] == "ssim_first_step" and q["rollout"]["ssim_first_step"] >= SSIM_THRESHOLD
    assert q["rollout"]["horizon"] == 20 and len(q["rollout"]["ssim_per_step"]) == 20
    assert q["rollout"]["ssim_per_step"][0] == round(q["rollout"]["ssim_first_step"], 4)
    assert q["phase_conv_max_abs_err"] < 1e-4 and manifest["parity"]["passed"]
    assert q["graphs"] == ["decoder", "step"]
    for graph in ("decoder", "step"):
        nodes = onnx.load(str(path / f"{graph}.onnx")).graph.node
        ops = [n.op_type for n in nodes]
        assert {"QuantizeLinear", "DequantizeLinear", "DepthToSpace"} <= set(ops), graph
        assert ops.count("ConvTranspose") == 1  # only the last layer, which writes the frame, stays fp32
        # the rewrite adds no FLOP: the same count as the fp32 graph with its transposed convolutions
        assert sum(onnx_flops(path / f"{graph}.onnx", 2).values()) == sum(onnx_flops(fp32.path / f"{graph}.onnx", 2).values())
    first = [n for n in onnx.load(str(path / "step.onnx")).graph.node if n.op_type == "Conv" and n.input[0] == "x_prev"]
    assert len(first) == 1  # the convolution reading the frame is not quantized: no DequantizeLinear before it
    for graph in ("encoder", "condition", "prior", "predictor", "posterior"):  # fp32, byte for byte
        assert manifest["graphs"][graph]["sha256"] == fp32.manifest["graphs"][graph]["sha256"]


def test_int8_rollout_is_close_to_fp32(int8):
    fp32, path, _ = int8
    context = synthetic_frames(4, 5, (1, 64, 64), seed=7)  # not the frames the export checked on
    eps = np.random.default_rng(3).standard_normal((4, 2, 12, 4), dtype=np.float32)
    outs = []
    for bundle in (fp32.path, path):
        p = Predictor.load(bundle)
        outs.append(p.sample(p.observe(context), n_samples=2, horizon=12, eps=eps).frames)
    score = ssim(torch.from_numpy(outs[1]), torch.from_numpy(outs[0]))
    assert float(score.mean()) > 0.98
    assert not np.array_equal(outs[0], outs[1])  # it did run the quantized graphs


def test_option_errors(int8, tmp_path):
    fp32 = int8[0]
    with pytest.raises(SVGError, match="does not combine with --fp16"):
        ExportOptions(checkpoint=fp32.run, out=tmp_path / "x", int8=True, fp16=True)
    with pytest.raises(SVGError, match="does not combine"):
        ExportOptions(checkpoint=fp32.run, out=tmp_path / "x", int8=True, trt=True)
    with pytest.raises(SVGError, match="only applies to --int8"):
        ExportOptions(checkpoint=fp32.run, out=tmp_path / "x", calibration=tmp_path / "c.npy")
    np.save(tmp_path / "bad.npy", np.zeros((4, 3, 1, 32, 32), np.uint8))
    result = runner.invoke(app, ["export", str(fp32.run), "--out", str(tmp_path / "b"), "--int8",
                                 "--calibration", str(tmp_path / "bad.npy")])
    assert result.exit_code == 1 and "calibration frames must be (N >= 2, T >= 2, C, H, W)" in result.output
    assert not (tmp_path / "b").exists()
    np.save(tmp_path / "float.npy", np.full((4, 3, 1, 64, 64), 2.0, np.float32))
    result = runner.invoke(app, ["export", str(fp32.run), "--out", str(tmp_path / "b"), "--int8",
                                 "--calibration", str(tmp_path / "float.npy")])
    assert result.exit_code == 1 and "uint8 or float in [0, 1]" in result.output


def test_the_gate_is_the_first_predicted_frame_and_a_refused_cli_export_writes_nothing(int8, tmp_path, monkeypatch):
    import svg_export.quantize as quantize

    monkeypatch.setattr(quantize, "SSIM_THRESHOLD", 1.01)  # no int8 bundle can pass: the gate must refuse it
    result = runner.invoke(app, ["export", str(int8[0].run), "--out", str(tmp_path / "q"), "--int8"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(r"error: int8 first predicted frame's SSIM against fp32 PyTorch is 0\.9\d+ < 1\.01: export "
                     r"without --int8, or calibrate on real frames \(--calibration FRAMES\.npy\)", result.output)
    assert not (tmp_path / "q").exists()
