"""`svg rollout`: context files of every format, GIF/MP4/NPZ outputs, seeds, errors, no torch needed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from svg_cli.app import app
from svg_runtime import SVGRuntimeError
from svg_runtime.context import array_to_frames, conform_frames, load_context
from svg_runtime.manifest import MANIFEST_NAME
from svg_runtime.media import save_video, video_grid

runner = CliRunner()
T = 6  # frames in the context files
CELL = 66  # a 64x64 frame plus the grid's 2 px padding


def _video(t: int = T, size: int = 64, seed: int = 0) -> np.ndarray:
    """(t, size, size) uint8: a square moving over noise (structure survives lossy codecs)."""
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 60, (t, size, size), dtype=np.uint8)
    for i in range(t):
        v[i, 20:36, 4 + 4 * i:20 + 4 * i] = 230
    return v


def _rollout(bundle, context, out, *extra: str):
    args = ["rollout", str(bundle), "--context", str(context), "--out", str(out), "--samples", "3",
            "--horizon", "4", "--threads", "1", *extra]
    return runner.invoke(app, args)


def _ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def _fails(result, match: str) -> None:
    assert result.exit_code == 1, result.output
    assert re.search(match, result.output), result.output


@pytest.fixture(scope="module")
def reference(lp, tmp_path_factory):
    """The rollout of _video() given as a (T, H, W) .npy, seed 0."""
    root = tmp_path_factory.mktemp("ref")
    np.save(root / "ctx.npy", _video())
    _ok(_rollout(lp.path, root / "ctx.npy", root / "ref.npz", "--seed", "0"))
    return dict(np.load(root / "ref.npz"))


def _write_context(kind: str, root, video: np.ndarray):
    rgb = np.repeat(video[..., None], 3, axis=-1)  # (T, H, W, 3): gray stored as RGB
    if kind == "npy":
        np.save(root / "c.npy", video)
        return root / "c.npy"
    if kind == "npz-thwc":
        np.savez(root / "c.npz", frames=video[..., None], other=np.zeros(3))
        return root / "c.npz"
    if kind == "npz-float-tchw":
        np.savez(root / "c.npz", video[:, None].astype(np.float64) / 255)  # the only array, key arr_0
        return root / "c.npz"
    if kind in ("gif", "mp4"):
        return save_video(root / f"c.{kind}", rgb, fps=4)
    folder = root / "frames"
    folder.mkdir()
    for i, frame in enumerate(rgb if kind == "png-rgb" else video):  # names sort wrongly as plain strings
        Image.fromarray(frame).save(folder / f"frame_{i}.png")
    return folder


@pytest.mark.parametrize("kind", ["npz-thwc", "npz-float-tchw", "gif", "png-gray", "png-rgb", "mp4"])
def test_every_context_format_gives_the_same_rollout(lp, reference, tmp_path, kind):
    ctx = _write_context(kind, tmp_path, _video())
    out = _ok(_rollout(lp.path, ctx, tmp_path / "r.npz", "--seed", "0"))
    assert f"1 video(s) x {T} frame(s)" in out
    got = dict(np.load(tmp_path / "r.npz"))
    if kind == "mp4":  # lossy: the context comes back close, not equal
        assert np.abs(got["context"] - reference["context"]).mean() < 0.02
        np.testing.assert_array_equal(got["eps"], reference["eps"])
        return
    np.testing.assert_allclose(got["context"], reference["context"], atol=1e-6)  # float: x/255 in float64
    np.testing.assert_allclose(got["frames"], reference["frames"], atol=1e-5)


def test_npz_contents_and_batched_context(lp, tmp_path):
    videos = np.stack([_video(seed=0), _video(seed=1)])[:, :, None]  # (B, T, 1, H, W)
    np.save(tmp_path / "b.npy", videos)
    _ok(_rollout(lp.path, tmp_path / "b.npy", tmp_path / "r.npz", "--seed", "3", "--cond", "4"))
    got = np.load(tmp_path / "r.npz")
    assert got["frames"].shape == (2, 3, 4, 1, 64, 64) and got["frames"].dtype == np.float32
    assert got["mu"].shape == got["sigma"].shape == got["eps"].shape == (2, 3, 4, 4)
    assert np.all(got["sigma"] > 0) and 0 <= got["frames"].min() and got["frames"].max() <= 1
    np.testing.assert_array_equal(got["context"], videos[:, :4].astype(np.float32) / 255)
    assert int(got["seed"]) == 3
    eps = np.random.default_rng(3).standard_normal((2, 3, 4, 4), dtype=np.float32)
    np.testing.assert_array_equal(got["eps"], eps)  # the documented seed -> eps mapping


def test_directory_output_writes_a_gif_grid_and_npz(lp, tmp_path):
    np.save(tmp_path / "c.npy", _video())
    out = _ok(_rollout(lp.path, tmp_path / "c.npy", tmp_path / "out", "--cond", "2", "--show", "2"))
    assert "conditioning on 2 frame(s)" in out
    labelled = iio.imread(tmp_path / "out" / "rollout.gif", index=None)
    # 2 conditioning + 4 predicted frames; columns: ground truth (frames past --cond) + 2 samples,
    # below a caption and column labels, right of the row labels
    assert labelled.shape[0] == 6 and labelled.shape[1] > CELL + 2 + 20 and labelled.shape[2] > 3 * CELL + 2 + 20
    gif = labelled[:, -(CELL + 2):, -(3 * CELL + 2):]
    assert (labelled[:, :20].min(axis=-1) < 200).any(axis=(1, 2)).all()  # every frame carries its caption
    green = gif[:, 0, 0]
    assert np.all(green[:2, 1] > green[:2, 0] + 60) and np.all(gif[2:, 0, 0] == 255)  # conditioning marked
    truth = gif[:, 2:66, 2:66, 0].astype(int)
    assert np.abs(truth - _video()).mean() < 1  # ground truth column: the given frames (GIF palettes may round)
    assert np.load(tmp_path / "out" / "rollout.npz")["frames"].shape == (1, 3, 4, 1, 64, 64)


def test_mp4_output_and_a_context_without_ground_truth(lp, tmp_path):
    np.save(tmp_path / "c.npy", _video(t=3))
    _ok(_rollout(lp.path, tmp_path / "c.npy", tmp_path / "r.mp4", "--fps", "8"))
    video = iio.imread(tmp_path / "r.mp4", index=None, plugin="pyav")
    assert video.shape[0] == 7 and video.shape[2] - (3 * CELL + 2) < CELL  # 3 + 4 frames; 3 samples, no truth
    assert iio.immeta(tmp_path / "r.mp4", plugin="pyav")["fps"] == 8


def test_seeds(lp, tmp_path):
    np.save(tmp_path / "c.npy", _video())
    runs = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        _ok(_rollout(lp.path, tmp_path / "c.npy", tmp_path / f"{name}.npz", "--seed", seed))
        runs[name] = np.load(tmp_path / f"{name}.npz")["frames"]
    np.testing.assert_array_equal(runs["a"], runs["b"])
    assert np.abs(runs["a"] - runs["c"]).max() > 1e-3
    out = _ok(_rollout(lp.path, tmp_path / "c.npy", tmp_path / "d.npz"))  # no --seed: one is printed
    seed = re.search(r"seed (\d+)", out).group(1)
    _ok(_rollout(lp.path, tmp_path / "c.npy", tmp_path / "e.npz", "--seed", seed))
    np.testing.assert_array_equal(np.load(tmp_path / "d.npz")["frames"], np.load(tmp_path / "e.npz")["frames"])


def _bad_contexts(tmp_path) -> dict:
    rgb = np.stack([_video(), _video(seed=1), _video(seed=2)], axis=-1)  # channels differ
    files = {"small.npy": _video(size=32), "big.npy": _video(size=128), "rgb.npy": rgb,
             "empty.npy": np.zeros((0, 64, 64), np.uint8), "nan.npy": np.full((2, 64, 64), np.nan, np.float32),
             "range.npy": _video().astype(np.float32), "ambiguous.npy": np.zeros((2, 3, 64, 3), np.uint8),
             "int.npy": _video().astype(np.int64), "frame.npy": _video()[0]}
    for name, arr in files.items():
        np.save(tmp_path / name, arr)
    np.savez(tmp_path / "keys.npz", a=_video(), b=_video())
    (tmp_path / "nopng").mkdir()
    (tmp_path / "pngs").mkdir()
    Image.fromarray(_video()[0]).save(tmp_path / "pngs" / "0.png")
    Image.fromarray(_video(size=128)[0]).save(tmp_path / "pngs" / "1.png")
    alpha = np.zeros((64, 64, 4), np.uint8)
    Image.fromarray(alpha, "RGBA").save(tmp_path / "alpha.png")
    (tmp_path / "ctx.txt").write_text("frames")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return files


@pytest.mark.parametrize("name, extra, match", [
    ("small.npy", (), r"frames are 32x32 \(H x W\) but this model takes 64x64: resize your frames to 64x64$"),
    ("big.npy", (), r"resize your frames to 64x64 \(or use a model trained at 128x128\)"),
    ("rgb.npy", (), r"read as \(T, H, W, C\)\) frames are RGB .* convert them to grayscale"),
    ("empty.npy", (), "at least one batch entry and one frame"),
    ("nan.npy", (), "NaN"),
    ("range.npy", (), r"float frames must lie in \[0, 1\] \(divide 0..255 data by 255"),
    ("ambiguous.npy", (), "cannot tell its channel axis"),
    ("int.npy", (), "dtype int64: pass uint8"),
    ("frame.npy", (), r"shape \(64, 64\): expected \(T, H, W\)"),
    ("keys.npz", (), "holds 2 arrays \\(a, b\\): store the context under the key 'frames'"),
    ("obj.npy", (), "cannot read .* as a numpy array"),
    ("nopng", (), "holds no .png files"),
    ("pngs", (), "1.png is 128x128 .* all frames must match"),
    ("alpha.png", (), "transparent alpha channel"),
    ("ctx.txt", (), "cannot read context from ctx.txt"),
    ("missing.gif", (), "no context file at"),
    ("frame.npy", ("--cond", "0"), "--cond must be >= 1"),
    ("small.npy", ("--samples", "0"), "--samples must be >= 1"),
    ("big.npy", ("--cond", "7"), "resize"),  # the frames' problem is found first
])
def test_bad_contexts_and_options_are_clear_errors(lp, tmp_path, name, extra, match):
    _bad_contexts(tmp_path)
    _fails(_rollout(lp.path, tmp_path / name, tmp_path / "r.npz", *extra), match)


def test_bad_options_bundles_and_outputs(lp, tmp_path):
    np.save(tmp_path / "c.npy", _video())
    ctx = tmp_path / "c.npy"
    _fails(_rollout(lp.path, ctx, tmp_path / "r.npz", "--cond", "7"), r"--cond 7 needs at least 7 .* holds 6")
    bad = _rollout(lp.path, ctx, tmp_path / "r.npz", "--backend", "torch")  # typer checks the choices
    assert bad.exit_code == 2 and "'torch' is not one of 'auto'" in bad.output
    _fails(_rollout(lp.path, ctx, tmp_path / "r.npz", "--backend", "trt", "--device", "cuda"),
           "no TensorRT engines")
    _fails(_rollout(lp.path, ctx, tmp_path / "r.avi"), "r.avi: --out must end in .gif, .mp4 or .npz")
    (tmp_path / "plain").write_text("not a directory")
    _fails(_rollout(lp.path, ctx, tmp_path / "plain"), "plain: --out must end in .gif, .mp4 or .npz, or be a dir")
    _fails(_rollout(tmp_path / "nowhere", ctx, tmp_path / "r.npz"), "no bundle directory .* `svg export RUN")
    bundle = tmp_path / "bundle"
    shutil.copytree(lp.path, bundle)
    (bundle / "encoder.onnx").unlink()
    _fails(_rollout(bundle, ctx, tmp_path / "r.npz"), "missing encoder.onnx: re-export it")
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    (bundle / MANIFEST_NAME).write_text(json.dumps({**manifest, "schema_version": 2}))
    _fails(_rollout(bundle, ctx, tmp_path / "r.npz"), r"schema version 2, newer than this runtime reads \(1\): upgrade with `pip install -U")
    assert not list(tmp_path.glob("r.*"))  # nothing written on failure


def test_layouts_and_lossless_conversions():
    v = _video(t=2)
    tchw, layout = array_to_frames(v[:, None])
    thwc, layout2 = array_to_frames(v[..., None])
    assert (layout, layout2) == ("(T, C, H, W)", "(T, H, W, C)")
    np.testing.assert_array_equal(tchw, thwc)
    assert tchw.shape == (1, 2, 1, 64, 64)
    batch, layout = array_to_frames(np.zeros((3, 2, 64, 64, 3), np.float32))
    assert batch.shape == (3, 2, 3, 64, 64) and layout == "(B, T, H, W, C)"
    rgba = np.concatenate([np.repeat(v[:, None], 3, 1), np.full((2, 1, 64, 64), 255, np.uint8)], axis=1)
    np.testing.assert_array_equal(conform_frames(rgba, (3, 64, 64)), rgba[:, :3])  # opaque alpha dropped
    np.testing.assert_array_equal(conform_frames(rgba, (1, 64, 64)), v[:, None])
    near_gray = np.repeat(v[:, None], 3, 1).astype(np.float32) / 255
    near_gray[:, 1] += 2 / 255  # a codec's rounding: still gray, the mean is taken
    np.testing.assert_allclose(conform_frames(near_gray, (1, 64, 64))[:, 0], v / 255 + 2 / 765, atol=1e-6)
    with pytest.raises(SVGRuntimeError, match="grayscale .* but this model takes 3 channel.*convert them to RGB"):
        conform_frames(v[:, None], (3, 64, 64))


def test_load_context_sorts_png_frames_by_number(tmp_path):
    for i in (10, 2, 1):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(tmp_path / f"f{i}.png")
    ctx = load_context(tmp_path)
    assert ctx.frames.shape == (1, 3, 1, 8, 8) and list(ctx.frames[0, :, 0, 0, 0]) == [1, 2, 10]


def test_video_grid_leaves_absent_cells_empty():
    videos = np.full((1, 2, 3, 1, 4, 4), 0.0, np.float32)
    present = np.ones((1, 2, 3), bool)
    present[0, 0, 2] = False
    grid = video_grid(videos, pad=1, marked=1, present=present)
    assert grid.shape == (3, 6, 11, 3)
    assert np.all(grid[2, 1:5, 1:5] == 255) and np.all(grid[2, 1:5, 6:10] == 0)  # empty cell: background
    assert np.all(grid[0, 0, 0] == (40, 180, 60)) and np.all(grid[1, 0, 0] == 255)
    with pytest.raises(ValueError, match="present must have shape"):
        video_grid(videos, present=present[:, :1])


def test_rollout_runs_without_torch(lp, tmp_path):
    save_video(tmp_path / "c.gif", np.repeat(_video()[..., None], 3, axis=-1))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        from svg_cli.app import main
        sys.argv = ["svg", "rollout", {str(lp.path)!r}, "--context", {str(tmp_path / "c.gif")!r}, "--out",
                    {str(tmp_path / "out")!r}, "--samples", "2", "--horizon", "3", "--seed", "0"]
        try:
            main()
        except SystemExit as e:
            assert not e.code, e.code
        assert not [m for m in sys.modules if m.split(".")[0] == "torch" and sys.modules[m] is not None]
        print("no torch")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("no torch"), result.stdout + result.stderr
    assert np.load(tmp_path / "out" / "rollout.npz")["frames"].shape == (1, 2, 3, 1, 64, 64)
    assert iio.imread(tmp_path / "out" / "rollout.gif", index=None).shape[0] == T + 3
