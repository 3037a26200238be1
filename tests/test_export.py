"""`svg export`: graph rules, parity records, atomic writes, errors, fp16, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from bundle_fixtures import MODELS, get_bundle, make_run
from typer.testing import CliRunner

from svg_core.errors import SVGError
from svg_export import bundle as bundle_mod
from svg_export.bundle import ExportOptions, export_bundle
from svg_export.cells import Cell, export_model
from svg_export.onnx_export import FORBIDDEN_OPS, graph_violations
from svg_runtime import Predictor
from svg_runtime.hashing import sha256_file
from svg_runtime.manifest import BATCH_AXIS, ModelSpec, graph_io


@pytest.fixture(scope="module", params=list(MODELS))
def bundle(request, tmp_path_factory):
    return get_bundle(tmp_path_factory, request.param)


def test_graphs_follow_the_bundle_rules(bundle):
    spec = ModelSpec.from_manifest(bundle.manifest)
    expected = {"lp": 7, "fp": 6, "det": 5}[spec.kind]
    assert sorted(bundle.manifest["graphs"]) == sorted(spec.graphs()) and len(spec.graphs()) == expected
    assert sorted(p.name for p in bundle.path.iterdir()) == sorted([f"{g}.onnx" for g in spec.graphs()]
                                                                  + ["manifest.json"])  # no weight sidecars
    for graph, entry in bundle.manifest["graphs"].items():
        model = onnx.load(str(bundle.path / entry["file"]))
        onnx.checker.check_model(model, full_check=True)
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 20
        ops = {n.op_type for n in model.graph.node}
        assert not ops & set(FORBIDDEN_OPS) and not any(op.startswith("Random") for op in ops), graph
        for value in list(model.graph.input) + list(model.graph.output):  # batch axis symbolic everywhere
            assert value.type.tensor_type.shape.dim[0].dim_param == BATCH_AXIS, (graph, value.name)
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, (graph, value.name)
        assert graph_violations(model, graph_io(spec, graph)) == []
        assert [t["name"] for t in entry["inputs"]] == [i.name for i in model.graph.input]
        assert entry["sha256"] == sha256_file(bundle.path / entry["file"])


def test_manifest_records_parity_and_provenance(bundle):
    m = bundle.manifest
    parity = m["parity"]
    assert parity["passed"] and parity["tolerance"] == 1e-4 and parity["batch_sizes"] == [2, 5]
    assert set(parity["graphs"]) == set(m["graphs"])
    assert all(e["max_abs_err"] < 1e-4 for e in parity["graphs"].values())
    assert parity["rollout"]["context"] == 5 and parity["rollout"]["horizon"] == 20
    assert parity["rollout"]["max_abs_err"] < 1e-4
    ckpt = bundle.run / "checkpoint.safetensors"
    assert m["checkpoint"] == {"path": str(ckpt.resolve()), "sha256": sha256_file(ckpt), "step": 3}
    assert m["model"]["kind"] == MODELS[bundle.name]["kind"] and m["export"]["exporter"] == "dynamo"
    assert m["versions"]["torch"] == torch.__version__ and m["export"]["seconds"] > 0
    assert m["train"]["n_past"] == 5  # for evaluation tools


def test_graphs_run_at_any_batch_and_match_pytorch(bundle):
    """Independent of the exporter's own check: batch 7 (not used at export), every graph."""
    spec = ModelSpec.from_manifest(bundle.manifest)
    gen = torch.Generator().manual_seed(11)
    for graph in spec.graphs():
        cell = Cell(bundle.model, spec, graph)
        inputs = [torch.rand((7, *t.shape), generator=gen) for t in cell.io.inputs]
        sess = ort.InferenceSession(str(bundle.path / f"{graph}.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(None, {t.name: x.numpy() for t, x in zip(cell.io.inputs, inputs, strict=True)})
        with torch.no_grad():
            want = cell(*inputs)
        for g, w in zip(got, want, strict=True):
            assert g.shape == tuple(w.shape) and g.shape[0] == 7
            np.testing.assert_allclose(g, w.numpy(), atol=1e-4 * max(1.0, float(w.abs().max())), err_msg=graph)


def test_batchnorm_is_folded(tmp_path):
    run, model = make_run(tmp_path, "bn", kind="det")
    folded = export_model(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded.encoder(x)[0], model.encoder(x)[0], atol=1e-5, rtol=1e-5)


def test_existing_bundle_needs_force_and_is_replaced_atomically(tmp_path_factory):
    det = get_bundle(tmp_path_factory, "det")
    with pytest.raises(SVGError, match="already exists: pass --force"):
        export_bundle(ExportOptions(checkpoint=det.run, out=det.path))
    not_bundle = det.path.parent / "notes"
    not_bundle.mkdir()
    (not_bundle / "mine.txt").write_text("keep")
    with pytest.raises(SVGError, match="not a bundle; refusing"):
        export_bundle(ExportOptions(checkpoint=det.run, out=not_bundle, force=True))
    assert (not_bundle / "mine.txt").read_text() == "keep"


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_failed_parity_leaves_nothing(tmp_path, monkeypatch):
    run, _ = make_run(tmp_path, "bad", kind="det")
    monkeypatch.setattr(bundle_mod.verify, "graph_error", lambda *a, **k: {"max_abs_err": 0.25, "scale": 1.0})
    monkeypatch.setattr(bundle_mod, "export_cell", lambda cell, example, path, opset: path.write_bytes(b"x") and "dynamo")
    monkeypatch.setattr(bundle_mod.verify, "rollout_error", lambda *a, **k: {
        "context": 5, "horizon": 20, "n_samples": 3, "max_abs_err": 0.5, "mean_abs_err": 0.1})
    with pytest.raises(SVGError, match=r"within 0.0001 \(fp32\): encoder: 0.25.*rollout 5 -> 20 frames: 0.5"):
        export_bundle(ExportOptions(checkpoint=run, out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(SVGError, match="no checkpoint at"):
        export_bundle(ExportOptions(checkpoint=tmp_path / "missing", out=tmp_path / "b"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "checkpoint.safetensors").write_bytes(b"garbage, not safetensors")
    with pytest.raises(SVGError, match="corrupt"):
        export_bundle(ExportOptions(checkpoint=bad, out=tmp_path / "b"))
    run, _ = make_run(tmp_path, "kind", kind="det")
    from safetensors import safe_open
    from safetensors.torch import save_file

    ckpt = run / "checkpoint.safetensors"
    with safe_open(ckpt, framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta["config"] = meta["config"].replace('"kind": "det"', '"kind": "gan"')
    save_file(tensors, ckpt, metadata=meta)
    with pytest.raises(SVGError, match="unknown model kind 'gan'"):
        export_bundle(ExportOptions(checkpoint=run, out=tmp_path / "b"))
    with pytest.raises(SVGError, match="opt-batch"):
        ExportOptions(checkpoint=run, out=tmp_path / "b", opt_batch=300, max_batch=256)
    assert not (tmp_path / "b").exists()
    _no_leftovers(tmp_path)


def test_missing_tensorrt_is_a_clean_error_before_writing(tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    run, _ = make_run(tmp_path, "trt", kind="det")
    with pytest.raises(SVGError, match=r"TensorRT is not installed: pip install svg-video\[gpu\]"):
        export_bundle(ExportOptions(checkpoint=run, out=tmp_path / "b", trt=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_trt"]


def test_fp16_bundle(tmp_path_factory):
    b = get_bundle(tmp_path_factory, "lp", fp16=True)
    m = b.manifest
    assert m["precision"] == "fp16" and m["parity"]["tolerance"] == 1e-2 and m["parity"]["passed"]
    model = onnx.load(str(b.path / "step.onnx"))
    half = [t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert half and any(n.op_type == "Cast" for n in model.graph.node)  # fp16 weights inside the graph
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
               for v in list(model.graph.input) + list(model.graph.output))  # fp32 at the boundary
    assert 0 < m["parity"]["graphs"]["step"]["max_abs_err"] < 1e-2  # not fp32 in disguise
    assert m["parity"]["graphs"]["predictor"]["max_abs_err"] < 1e-5  # the LSTMs stay fp32
    p = Predictor.load(b.path, threads=1)
    ref = get_bundle(tmp_path_factory, "lp")
    ctx = np.random.default_rng(0).random((2, 3, 1, 64, 64), dtype=np.float32)
    eps = np.random.default_rng(1).standard_normal((2, 2, 5, 4), dtype=np.float32)
    got = p.sample(p.observe(ctx), n_samples=2, horizon=5, eps=eps).frames
    with torch.no_grad():
        from svg_core.sampling import generate

        want = generate(ref.model, torch.from_numpy(ctx), 5, 2, eps=torch.from_numpy(eps)).frames.numpy()
    assert np.abs(got - want).max() < 1e-2


def test_cli_export(tmp_path):
    from svg_cli.app import app

    run, _ = make_run(tmp_path, "cli", kind="det")
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "max abs err vs PyTorch" in result.output
    # the progress bar, as a log shows it (not a terminal): plain lines, the last one complete
    assert "\r" not in result.output
    n_stages = len(json.loads((tmp_path / "b" / "manifest.json").read_text())["graphs"]) + 2
    assert "export: 100%" in result.output and f"{n_stages}/{n_stages}" in result.output
    assert "written" in result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["model"]["kind"] == "det" and manifest["parity"]["passed"]
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "already exists: pass --force" in result.output
    result = runner.invoke(app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "c")])
    assert result.exit_code == 1 and "no checkpoint at" in result.output


@pytest.mark.requires_tensorrt
def test_trt_export_records_engines(tmp_path_factory, tmp_path):
    pytest.importorskip("tensorrt")
    lp = get_bundle(tmp_path_factory, "lp")
    m = export_bundle(ExportOptions(checkpoint=lp.run, out=tmp_path / "b", trt=True, max_batch=16, opt_batch=4))
    trt = m["tensorrt"]
    assert trt["gpu"] and trt["version"] and trt["max_batch"] == 16
    assert set(trt["engines"]) == {"encoder", "condition", "step"}
    assert trt["engines"]["step"]["profiles"]["x_prev"] == {"min": [1, 1, 64, 64], "opt": [4, 1, 64, 64],
                                                            "max": [16, 1, 64, 64]}
    assert all((tmp_path / "b" / e["file"]).is_file() for e in trt["engines"].values())


def test_torchscript_fallback_when_dynamo_fails(tmp_path, monkeypatch, caplog):
    run, _ = make_run(tmp_path, "ts", kind="det")
    export = torch.onnx.export

    def dynamo_breaks(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("\x1b[96mtorch.export cannot trace this\x1b[0m\ndetails")
        return export(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_breaks)
    m = export_bundle(ExportOptions(checkpoint=run, out=tmp_path / "b"))
    assert m["export"]["exporter"] == "torchscript" and m["parity"]["passed"]
    assert "dynamo export of step failed (torch.export cannot trace this); falling back" in caplog.text
    model = onnx.load(str(tmp_path / "b" / "step.onnx"))
    assert graph_violations(model, graph_io(ModelSpec.from_manifest(m), "step")) == []
