"""The torch-free runtime: parity with svg_core.sampling, the stepwise API, seeds, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from bundle_fixtures import MODELS, get_bundle, random_context

from svg_core import sampling
from svg_runtime import Predictor, SVGRuntimeError
from svg_runtime.manifest import MANIFEST_NAME

ATOL = 1e-4


def _torch_generate(model, context, eps):
    with torch.no_grad():
        return sampling.generate(model, torch.from_numpy(context), eps.shape[2], eps.shape[1],
                                 eps=torch.from_numpy(eps))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("io_binding", [False, True], ids=["run", "iobinding"])
def test_rollout_matches_pytorch(tmp_path_factory, name, io_binding):
    bundle = get_bundle(tmp_path_factory, name)
    p = Predictor.load(bundle.path, backend="ort", threads=1, io_binding=io_binding)
    ctx = random_context(p.spec, t=3)
    eps = np.random.default_rng(1).standard_normal((2, 2, 6, p.spec.latent_dim), dtype=np.float32)
    got = p.sample(p.observe(ctx), n_samples=2, horizon=6, eps=eps)
    want = _torch_generate(bundle.model, ctx, eps)
    assert got.frames.shape == (2, 2, 6, *p.spec.frame_shape) and got.frames.dtype == np.float32
    np.testing.assert_allclose(got.frames, want.frames.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got.mu, want.mu.numpy(), atol=ATOL, rtol=1e-4)
    np.testing.assert_allclose(got.sigma, want.sigma.numpy(), atol=ATOL, rtol=1e-4)
    if p.spec.has_latent:  # the noise matters: samples of one video differ clearly
        assert np.abs(got.frames[:, 0] - got.frames[:, 1]).max() > 0.05


def test_kind_specific_outputs(tmp_path_factory):
    fp = Predictor.load(get_bundle(tmp_path_factory, "fp").path, threads=1)
    out = fp.sample(fp.observe(random_context(fp.spec)), n_samples=2, horizon=3, seed=0)
    assert np.all(out.mu == 0) and np.all(out.sigma == 1) and out.sigma.shape == (2, 2, 3, 4)
    det = Predictor.load(get_bundle(tmp_path_factory, "det").path, threads=1)
    out = det.sample(det.observe(random_context(det.spec)), n_samples=3, horizon=2, seed=0)
    assert out.sigma.shape == (2, 3, 2, 0)
    np.testing.assert_array_equal(out.frames[:, 0], out.frames[:, 2])  # no latent: samples equal


def test_single_context_frame(lp, lp_pred):
    ctx = random_context(lp_pred.spec, t=1)
    eps = np.random.default_rng(2).standard_normal((2, 1, 4, 4), dtype=np.float32)
    got = lp_pred.sample(lp_pred.observe(ctx), horizon=4, eps=eps)
    np.testing.assert_allclose(got.frames, _torch_generate(lp.model, ctx, eps).frames.numpy(), atol=ATOL)


def test_stepwise_api_equals_sample(lp_pred):
    ctx = random_context(lp_pred.spec, t=4)
    eps = np.random.default_rng(3).standard_normal((2, 3, 5, 4), dtype=np.float32)
    state = lp_pred.observe(ctx[:, :3])
    lp_pred.observe_frame(state, ctx[:, 3])
    before = state.tensors()
    want = lp_pred.sample(state, n_samples=3, horizon=5, eps=eps)
    for k, v in state.tensors().items():  # sample() leaves its input state alone
        np.testing.assert_array_equal(v, before[k])
    np.testing.assert_allclose(lp_pred.sample(lp_pred.observe(ctx), n_samples=3, horizon=5, eps=eps).frames,
                               want.frames, atol=1e-6)
    forked = lp_pred.fork(state, 3)
    assert forked.batch == 6
    for t in range(5):
        out = lp_pred.step(forked, eps=eps[:, :, t].reshape(6, 4))
        assert not out.frame.flags.writeable
        np.testing.assert_allclose(out.frame.reshape(2, 3, *out.frame.shape[1:]), want.frames[:, :, t], atol=1e-6)
        np.testing.assert_allclose(out.sigma.reshape(2, 3, 4), want.sigma[:, :, t], atol=1e-6)


def test_observe_frame_matches_pytorch(lp, lp_pred):
    ctx = random_context(lp_pred.spec, t=3)
    state = lp_pred.observe_frame(lp_pred.observe(ctx[:, :2]), ctx[:, 2])
    with torch.no_grad():
        model = lp.model.eval()
        want = sampling.observe_frame(model, sampling.observe(model, torch.from_numpy(ctx[:, :2])),
                                     torch.from_numpy(ctx[:, 2]))
    got = state.tensors()
    np.testing.assert_allclose(got["predictor_h"], want.predictor[0].numpy(), atol=ATOL)
    np.testing.assert_allclose(got["posterior_c"], want.posterior[1].numpy(), atol=ATOL)
    np.testing.assert_allclose(got["skip_0"], want.skips[0].numpy(), atol=ATOL)
    np.testing.assert_array_equal(got["x_prev"], ctx[:, 2])


def test_copy_and_restore_for_tree_search(lp_pred):
    state = lp_pred.fork(lp_pred.observe(random_context(lp_pred.spec)), 2)
    snapshot = state.copy()
    rng = np.random.default_rng(4)
    eps = rng.standard_normal((3, 4, 4), dtype=np.float32)
    first = [lp_pred.step(state, eps=e).frame.copy() for e in eps]
    state.restore(snapshot)
    again = [lp_pred.step(state, eps=e).frame.copy() for e in eps]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    other = [lp_pred.step(snapshot, eps=e).frame.copy() for e in eps]  # the snapshot is independent
    np.testing.assert_array_equal(np.stack(first), np.stack(other))


def test_seeds(lp_pred):
    state = lp_pred.observe(random_context(lp_pred.spec))
    a = lp_pred.sample(state, n_samples=2, horizon=3, seed=7)
    b = lp_pred.sample(state, n_samples=2, horizon=3, seed=7)
    c = lp_pred.sample(state, n_samples=2, horizon=3, seed=8)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert np.abs(a.frames - c.frames).max() > 1e-4
    eps = np.random.default_rng(7).standard_normal((2, 2, 3, 4), dtype=np.float32)
    np.testing.assert_array_equal(lp_pred.sample(state, n_samples=2, horizon=3, eps=eps).frames, a.frames)
    lp_pred.reset(seed=5)
    d = lp_pred.sample(state, n_samples=2, horizon=3)
    lp_pred.reset(seed=5)
    np.testing.assert_array_equal(lp_pred.sample(state, n_samples=2, horizon=3).frames, d.frames)


def test_uint8_context_equals_float(lp_pred):
    ctx8 = np.random.default_rng(5).integers(0, 256, (1, 2, *lp_pred.spec.frame_shape), dtype=np.uint8)
    a = lp_pred.sample(lp_pred.observe(ctx8), horizon=2, seed=0)
    b = lp_pred.sample(lp_pred.observe(ctx8.astype(np.float32) / 255), horizon=2, seed=0)
    np.testing.assert_array_equal(a.frames, b.frames)


def test_import_never_imports_torch(lp):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        import svg_runtime
        p = svg_runtime.Predictor.load({str(lp.path)!r}, threads=1)
        out = p.sample(p.observe(np.zeros((1, 2, 1, 64, 64), np.float32)), n_samples=2, horizon=2, seed=0)
        assert out.frames.shape == (1, 2, 2, 1, 64, 64)
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 1, 64, 64), np.float32), r"shape \(B, T, C, H, W\)"),
    (np.zeros((1, 2, 3, 64, 64), np.float32), "channel"),
    (np.zeros((1, 2, 1, 32, 32), np.float32), "resize to 64x64"),
    (np.full((1, 2, 1, 64, 64), np.nan, np.float32), "NaN"),
    (np.full((1, 2, 1, 64, 64), 255.0, np.float32), r"\[0, 1\]"),
    (np.zeros((1, 2, 1, 64, 64), np.int32), "uint8"),
    (np.zeros((1, 0, 1, 64, 64), np.float32), "at least one"),
])
def test_bad_context_is_rejected(lp_pred, bad, match):
    with pytest.raises(SVGRuntimeError, match=match):
        lp_pred.observe(bad)


def test_bad_arguments_are_rejected(lp_pred, tmp_path):
    state = lp_pred.observe(random_context(lp_pred.spec))
    with pytest.raises(SVGRuntimeError, match="eps must have shape"):
        lp_pred.sample(state, n_samples=2, horizon=3, eps=np.zeros((2, 2, 3, 5), np.float32))
    with pytest.raises(SVGRuntimeError, match="NaN"):
        lp_pred.step(state, eps=np.full((2, 4), np.nan, np.float32))
    with pytest.raises(SVGRuntimeError, match="n_samples >= 1"):
        lp_pred.sample(state, n_samples=0)
    with pytest.raises(SVGRuntimeError, match="batch 3 but the state has batch 2"):
        lp_pred.observe_frame(state, np.zeros((3, 1, 64, 64), np.float32))
    with pytest.raises(SVGRuntimeError, match="restore a state of batch 4"):
        state.restore(lp_pred.fork(state, 2))
    with pytest.raises(SVGRuntimeError, match="unknown backend"):
        Predictor.load(lp_pred.bundle, backend="tensorflow")
    with pytest.raises(SVGRuntimeError, match="unknown device"):
        Predictor.load(lp_pred.bundle, device="gpu")
    with pytest.raises(SVGRuntimeError, match="no TensorRT engines"):
        Predictor.load(lp_pred.bundle, backend="trt", device="cuda")
    with pytest.raises(SVGRuntimeError, match="no bundle directory"):
        Predictor.load(tmp_path / "nowhere")


def test_cuda_without_gpu_is_a_clear_error(lp):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu installed: this test covers CPU-only installs")
    with pytest.raises(SVGRuntimeError, match="no working CUDA provider"):
        Predictor.load(lp.path, device="cuda")


def _copy_bundle(lp, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(lp.path, dst)
    return dst


def test_damaged_bundles_are_rejected(lp, tmp_path):
    b = _copy_bundle(lp, tmp_path)
    manifest = json.loads((b / MANIFEST_NAME).read_text())
    (b / MANIFEST_NAME).write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(SVGRuntimeError, match="newer than this runtime.*pip install -U"):
        Predictor.load(b)
    (b / MANIFEST_NAME).write_text(json.dumps(manifest)[:-20])
    with pytest.raises(SVGRuntimeError, match="corrupt"):
        Predictor.load(b)
    (b / MANIFEST_NAME).write_text(json.dumps({**manifest, "model": {**manifest["model"], "kind": "gan"}}))
    with pytest.raises(SVGRuntimeError, match=r"model.kind: 'gan' is not one of"):
        Predictor.load(b)
    (b / MANIFEST_NAME).write_text(json.dumps(manifest))
    data = (b / "step.onnx").read_bytes()
    (b / "step.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(SVGRuntimeError, match="step.onnx is corrupt"):
        Predictor.load(b)
    (b / "step.onnx").unlink()
    with pytest.raises(SVGRuntimeError, match="missing step.onnx"):
        Predictor.load(b)
    (b / MANIFEST_NAME).unlink()
    with pytest.raises(SVGRuntimeError, match="has no manifest.json"):
        Predictor.load(b)


def test_graph_that_onnxruntime_cannot_load(lp, tmp_path):
    b = _copy_bundle(lp, tmp_path)
    manifest = json.loads((b / MANIFEST_NAME).read_text())
    (b / "step.onnx").write_bytes(b"not an onnx file")
    from svg_runtime.hashing import sha256_file

    manifest["graphs"]["step"]["sha256"] = sha256_file(b / "step.onnx")  # passes the checksum
    (b / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(SVGRuntimeError, match="onnxruntime cannot load"):
        Predictor.load(b)


@pytest.mark.parametrize("name", ["lp", "det"])
def test_tensorrt_backend_logic_with_a_fake_tensorrt(tmp_path_factory, tmp_path, monkeypatch, name):
    """Ping-pong device buffers, CUDA graph capture/replay and max-batch chunking of the TensorRT
    backend, on fake tensorrt/cudart modules that run the ONNX graphs (see fake_tensorrt.py)."""
    from fake_tensorrt import fake_modules, with_fake_engines

    bundle = get_bundle(tmp_path_factory, name)  # export first: torch probes the cuda modules
    modules, cuda = fake_modules(max_batch=4)
    for key, module in modules.items():
        monkeypatch.setitem(sys.modules, key, module)
    p_trt = Predictor.load(with_fake_engines(bundle.path, tmp_path / "b", max_batch=4), device="cuda")
    p_ort = Predictor.load(bundle.path, threads=1)
    assert p_trt.backend.name == "trt"
    ctx = random_context(p_ort.spec, b=2, t=3)  # the encoder sees 6 frames: two chunks of at most 4
    a = p_trt.sample(p_trt.observe(ctx), n_samples=2, horizon=5, seed=0)
    b = p_ort.sample(p_ort.observe(ctx), n_samples=2, horizon=5, seed=0)
    np.testing.assert_allclose(a.frames, b.frames, atol=1e-6)
    np.testing.assert_allclose(a.sigma, b.sigma, atol=1e-6)
    assert cuda.graph_launches == 3  # steps 3..5 replay the graphs captured after one plain run each
    replay = p_trt.sample(p_trt.observe(ctx), n_samples=2, horizon=5, seed=0)  # pooled buffers: replays
    np.testing.assert_array_equal(replay.frames, a.frames)
    assert cuda.graph_launches == 8
    state = p_trt.fork(p_trt.observe(ctx), 2)
    snapshot = state.copy()
    first = [p_trt.step(state, rng=np.random.default_rng(1)).frame.copy() for _ in range(3)]
    state.restore(snapshot)
    again = [p_trt.step(state, rng=np.random.default_rng(1)).frame.copy() for _ in range(3)]
    np.testing.assert_array_equal(first, again)  # (.copy(): a step's frame is valid until the next step)


@pytest.mark.requires_tensorrt
def test_tensorrt_backend_matches_onnxruntime(tmp_path_factory, tmp_path):
    pytest.importorskip("tensorrt")
    from svg_export.bundle import ExportOptions, export_bundle

    lp = get_bundle(tmp_path_factory, "lp")
    export_bundle(ExportOptions(checkpoint=lp.run, out=tmp_path / "trt", trt=True, max_batch=16, opt_batch=4))
    p_trt = Predictor.load(tmp_path / "trt", backend="trt", device="cuda")
    p_ort = Predictor.load(lp.path)
    ctx = random_context(p_ort.spec)
    a = p_trt.sample(p_trt.observe(ctx), n_samples=3, horizon=8, seed=0)
    a2 = p_trt.sample(p_trt.observe(ctx), n_samples=3, horizon=8, seed=0)  # replays the CUDA graphs
    b = p_ort.sample(p_ort.observe(ctx), n_samples=3, horizon=8, seed=0)
    np.testing.assert_allclose(a.frames, b.frames, atol=1e-3)
    np.testing.assert_array_equal(a.frames, a2.frames)
