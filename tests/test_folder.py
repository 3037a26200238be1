"""folder:PATH datasets: videos, GIFs, image folders and arrays decoded once; errors name the files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner
from video_fixtures import moving_frames, write_gif, write_png_folder, write_video

from svg_core.config import preset
from svg_core.data import folder as folder_mod
from svg_core.data.clips import load_index, open_frames
from svg_core.data.folder import prepare_folder
from svg_core.data.videos import crop_resize
from svg_core.datasets import build_dataset, fit_to_data
from svg_core.errors import SVGError


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SVG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def rgb_folder(root: Path) -> dict[str, np.ndarray]:
    """mp4, gif, a png folder and arrays, all RGB; returns the source frames per expected name."""
    clips = {name: moving_frames(n, 72, 96, seed=i, gray=False)
             for i, (name, n) in enumerate([("a.mp4", 20), ("b.gif", 18), ("c_frames", 16), ("d.npy", 17)])}
    write_video(root / "a.mp4", clips["a.mp4"], codec="libx264")
    write_gif(root / "b.gif", clips["b.gif"])
    write_png_folder(root / "c_frames", clips["c_frames"])
    np.save(root / "d.npy", clips["d.npy"])  # (T, H, W, 3) uint8
    two = np.stack([moving_frames(16, 64, 64, seed=9, gray=False)] * 2).transpose(0, 1, 4, 2, 3)
    np.savez(root / "e.npz", videos=two.astype(np.float32) / 255)  # (N, T, C, H, W) floats in [0, 1]
    (root / "notes.txt").write_text("ignored")
    return clips


def test_rgb_folder_decodes_every_kind(tmp_path: Path) -> None:
    root = tmp_path / "vids"
    clips = rgb_folder(root)
    index = load_index(prepare_folder(root, 64))
    videos = {v["name"]: v for v in index["videos"]}
    assert list(videos) == ["a.mp4", "b.gif", "d.npy", "e.npz[0]", "e.npz[1]", "c_frames"]
    assert index["channels"] == 3 and [videos[n]["length"] for n in ("a.mp4", "b.gif", "c_frames")] == [20, 18, 16]
    frames = open_frames(prepare_folder(root, 64))
    for name, tol in (("d.npy", 0), ("c_frames", 0), ("a.mp4", 6), ("b.gif", 12)):  # lossless, h264, palette
        want = np.stack([crop_resize(f, 64) for f in clips[name]]).transpose(0, 3, 1, 2).astype(np.int16)
        got = frames[videos[name]["start"]:][:len(want)].astype(np.int16)
        assert np.abs(got - want).mean() <= tol, name


def test_gray_folder_is_one_channel_and_feeds_training(tmp_path: Path) -> None:
    root = tmp_path / "gray"
    write_video(root / "x.avi", moving_frames(24, seed=1))  # MPEG-4: gray content with chroma noise
    write_png_folder(root / "shots" / "take1", moving_frames(20, 64, 80, seed=2), gray=True)
    np.save(root / "y.npy", moving_frames(22, 64, 64, seed=3)[..., 0])  # (T, H, W)
    cfg = fit_to_data(preset("smmnist-small", dataset=f"folder:{root}"))
    assert cfg.model.channels == 1
    data = build_dataset(cfg, "train")
    assert data[0]["frames"].shape == (15, 1, 64, 64)
    assert set(data.names) == {"x.avi", "y.npy", "shots/take1"}
    y = next(v for v in load_index(prepare_folder(root, 64))["videos"] if v["name"] == "y.npy")
    np.testing.assert_array_equal(open_frames(prepare_folder(root, 64))[y["start"] + 21, 0],
                                  crop_resize(moving_frames(22, 64, 64, seed=3)[-1, ..., 0], 64))
    loader = torch.utils.data.DataLoader(data, batch_size=3, sampler=range(6), num_workers=2)
    torch.testing.assert_close(torch.cat([b["frames"] for b in loader]), torch.stack([data[i]["frames"] for i in range(6)]))
    sample = build_dataset(cfg, "sample")
    assert not torch.equal(sample[0]["frames"], data[0]["frames"])  # other seed, same videos


def test_rgb_data_make_an_rgb_model(tmp_path: Path) -> None:
    root = tmp_path / "rgb"
    rgb_folder(root)
    cfg = preset("smmnist-small", dataset=f"folder:{root}")
    with pytest.raises(SVGError, match="holds RGB \\(3 channels\\) frames but the model has 1 channel"):
        build_dataset(cfg)
    assert fit_to_data(cfg).model.channels == 3
    assert build_dataset(fit_to_data(cfg))[1]["frames"].shape == (15, 3, 64, 64)


def test_mixed_channels_name_the_files(tmp_path: Path, cache_dir: Path) -> None:
    root = tmp_path / "mixed"
    write_video(root / "color.mp4", moving_frames(16, 64, 64, gray=False), codec="libx264")
    write_png_folder(root / "bw", moving_frames(16, 64, 64), gray=True)
    with pytest.raises(SVGError, match="mixes gray and RGB videos.*gray: bw; RGB: color.mp4"):
        prepare_folder(root, 64)
    assert not any(p.name.endswith(".npy") for p in cache_dir.rglob("*"))  # nothing half-written left


def test_too_short_unreadable_and_empty(tmp_path: Path) -> None:
    root = tmp_path / "short"
    write_gif(root / "long.gif", moving_frames(16, 64, 64))
    write_gif(root / "tiny.gif", moving_frames(5, 64, 64))
    with pytest.raises(SVGError, match="1 of 2 videos are shorter than 15 frames .*tiny.gif \\(5 frames\\)"):
        build_dataset(fit_to_data(preset("smmnist-small", dataset=f"folder:{root}")))  # fitting reads the data too
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    with pytest.raises(SVGError, match="cannot decode .*broken.mp4"):
        prepare_folder(root, 64)
    (root / "bad.npy").write_bytes(b"not numpy")
    (root / "broken.mp4").unlink()
    with pytest.raises(SVGError, match="cannot read array file .*bad.npy"):
        prepare_folder(root, 64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SVGError, match="no video under"):
        prepare_folder(tmp_path / "empty", 64)


def test_decoded_once_then_cached_until_a_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "c"
    write_gif(root / "v.gif", moving_frames(16, 64, 64))
    first = prepare_folder(root, 64)
    monkeypatch.setattr(folder_mod, "read_video", lambda *a, **k: pytest.fail("decoded again"))
    assert prepare_folder(root, 64) == first
    from svg_cli.app import app

    result = CliRunner().invoke(app, ["data", "folder", str(root)])
    assert result.exit_code == 0 and f"1 gray videos, 16 frames (shortest 16), cached in {first}" in result.output
    os.utime(root / "v.gif", ns=(1, 1))
    with pytest.raises(pytest.fail.Exception, match="decoded again"):
        prepare_folder(root, 64)


def test_cli_trains_on_a_folder(tmp_path: Path) -> None:
    from svg_cli.app import app

    root = tmp_path / "vids"
    write_gif(root / "v.gif", moving_frames(16, 64, 64, gray=False))
    np.save(root / "w.npy", moving_frames(16, 64, 64, seed=4, gray=False))
    runner, threads = CliRunner(), torch.get_num_threads()
    small = ["--steps", "1", "--batch-size", "2", "--width", "4", "--amp", "none", "--device", "cpu"]
    torch.set_num_threads(1)
    try:  # without --preset: a preset sized for the device, printed
        result = runner.invoke(app, ["train", "--dataset", "folder", "--data-dir", str(root), *small,
                                     "--out", str(tmp_path / "auto")])
        assert result.exit_code == 0, result.output
        assert "without --preset: using --preset smmnist-small" in result.output
        result = runner.invoke(app, ["train", "--dataset", f"folder:{root}", "--preset", "smmnist-small", *small,
                                     "--out", str(tmp_path / "r")])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert "the model takes 3" in result.output and "step 1: loss" in result.output
    assert (tmp_path / "r" / "samples" / "latest.gif").is_file()
