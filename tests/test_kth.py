"""KTH: converter on real-format AVI files, splits, the fixed test set, corrupt input, training data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner
from video_fixtures import moving_frames, write_video

from svg_core.config import preset
from svg_core.data.clips import ClipWriter, load_index, open_frames
from svg_core.data.kth import ACTIONS, convert_kth, make_kth_test_set
from svg_core.datasets import build_dataset, parse_dataset
from svg_core.errors import SVGError

# (person, action, scenario, frames): train and test persons of both splits (17-20 switch sides).
VIDEOS = [(1, "boxing", 1, 30), (17, "handwaving", 3, 34), (20, "walking", 4, 26), (21, "walking", 2, 45),
          (25, "running", 1, 41)]


def _name(person: int, action: str, scenario: int) -> str:
    return f"person{person:02d}_{action}_d{scenario}"


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    """The KTH layout: raw/<action>/personXX_<action>_dY_uncomp.avi, 160x120, 25 fps, gray content, MPEG-4."""
    root = tmp_path_factory.mktemp("kth") / "raw"
    for i, (person, action, scenario, n) in enumerate(VIDEOS):
        write_video(root / action / f"{_name(person, action, scenario)}_uncomp.avi", moving_frames(n, seed=i))
    (root / "README.txt").write_text("not a video")
    return root


@pytest.fixture(scope="module")
def store(raw_dir: Path) -> Path:
    return convert_kth(raw_dir, raw_dir.parent / "kth64")


def test_convert_keeps_every_frame_with_bookkeeping(store: Path) -> None:
    index = load_index(store)
    frames = open_frames(store)
    order = sorted(VIDEOS, key=lambda v: (v[0], ACTIONS.index(v[1]), v[2]))
    assert [v["name"] for v in index["videos"]] == [_name(*v[:3]) for v in order]
    assert [v["length"] for v in index["videos"]] == [v[3] for v in order]
    starts = np.cumsum([0] + [v[3] for v in order[:-1]])
    assert [v["start"] for v in index["videos"]] == starts.tolist()
    assert frames.shape == (sum(v[3] for v in VIDEOS), 1, 64, 64) and frames.dtype == np.uint8
    assert index["channels"] == 1 and index["image_size"] == 64 and index["resize"] == "squash"
    first = index["videos"][0]
    assert (first["person"], first["action"], first["scenario"]) == (1, "boxing", 1)
    assert first["source"] == "boxing/person01_boxing_d1_uncomp.avi"


def test_frames_are_the_squashed_video(store: Path) -> None:
    """The 160x120 frame squeezed to 64x64 (SVG/SRVP): close to Pillow's bicubic of the source frames."""
    truth = moving_frames(30, seed=0)[..., 0]  # video 0 = person01
    expected = np.stack([np.asarray(Image.fromarray(f).resize((64, 64), Image.Resampling.BICUBIC)) for f in truth])
    got = open_frames(store)[:30, 0].astype(np.int16)
    assert np.abs(got - expected).mean() < 4  # MPEG-4 coding + a different bicubic kernel
    # the block moves 4 source columns = 1.6 output columns per frame
    cols = [np.argmax(got[t, 30:36].mean(axis=0) > 180) for t in (0, 10)]
    assert 14 <= cols[1] - cols[0] <= 18


@pytest.mark.parametrize("split, test_persons", [("svg", {21, 25}), ("savp", {17, 20, 21, 25})])
def test_split_bookkeeping(raw_dir: Path, tmp_path: Path, split: str, test_persons: set[int]) -> None:
    index = load_index(convert_kth(raw_dir, tmp_path / "kth", split=split))
    assert {v["person"] for v in index["videos"] if v["split"] == "test"} == test_persons
    assert {v["person"] for v in index["videos"] if v["split"] == "train"} == {1, 17, 20} - test_persons
    assert index["split"]["test_persons"] == (list(range(21, 26)) if split == "svg" else list(range(17, 26)))


def test_crop_mode_drops_the_sides_and_size_128(raw_dir: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    frames = np.full((12, 120, 160, 3), 60, np.uint8)
    frames[:, :, 150:] = 250  # a bright stripe at the right edge: outside the center 120x120 crop
    write_video(one / "person03_jogging_d1_uncomp.avi", frames)
    squash = open_frames(convert_kth(one, tmp_path / "s", size=128))
    crop = open_frames(convert_kth(one, tmp_path / "c", size=128, resize="crop"))
    assert squash.shape == crop.shape == (12, 1, 128, 128)
    assert squash[5, 0, :, -3:].mean() > 200 and crop[5, 0, :, -3:].mean() < 90


def test_truncated_avi_is_refused_and_leaves_nothing(raw_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "raw"
    shutil.copytree(raw_dir, bad)
    victim = bad / "walking" / "person21_walking_d2_uncomp.avi"
    data = victim.read_bytes()
    victim.write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(SVGError, match="person21_walking_d2_uncomp.avi.*(truncated|cannot decode)"):
        convert_kth(bad, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no out, no hidden partial directory
    victim.write_bytes(b"RIFF garbage" * 50)
    with pytest.raises(SVGError, match="cannot decode .*person21_walking_d2"):
        convert_kth(bad, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_existing_output_and_empty_input(store: Path, tmp_path: Path) -> None:
    with pytest.raises(SVGError, match="already exists.*--force"):
        convert_kth(tmp_path, store)
    with pytest.raises(SVGError, match="no KTH video"):
        convert_kth(tmp_path, tmp_path / "out")


def test_test_set_is_seeded_and_drawn_from_test_persons(store: Path) -> None:
    a, b = make_kth_test_set(store, count=30, length=40, seed=7), make_kth_test_set(store, count=30, length=40, seed=7)
    c = make_kth_test_set(store, count=30, length=40, seed=8)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["starts"], c["starts"])
    assert a["frames"].shape == (30, 40, 1, 64, 64)
    assert set(a["names"]) == {"person21_walking_d2", "person25_running_d1"}  # the only test videos >= 40
    frames, videos = open_frames(store), {v["name"]: v for v in load_index(store)["videos"]}
    for i in (0, 17):
        v = videos[str(a["names"][i])]
        np.testing.assert_array_equal(a["frames"][i], frames[v["start"] + a["starts"][i]:][:40])
    assert json.loads(str(a["config"]))["seed"] == 7
    with pytest.raises(SVGError, match="lower --length"):
        make_kth_test_set(store, count=3, length=46)


def test_test_set_draws_like_srvp(tmp_path: Path) -> None:
    """On a complete KTH (all 120 test videos) the draws are SRVP's make_test_set.py's exactly."""
    lengths = {}
    with ClipWriter(tmp_path / "full", dataset="kth", image_size=4, channels=1) as writer:
        for person in range(21, 26):
            for action in ACTIONS:
                for scenario in range(1, 5):
                    n = 40 + (person * 7 + scenario * 3 + len(action)) % 13
                    lengths[_name(person, action, scenario)] = n
                    writer.add(np.zeros((n, 1, 4, 4), np.uint8), {
                        "name": _name(person, action, scenario), "person": person, "action": action,
                        "scenario": scenario, "split": "test"})
        writer.commit(split={"name": "svg", "train_persons": list(range(1, 21)), "test_persons": list(range(21, 26))})
    ours = make_kth_test_set(tmp_path / "full", count=50, length=40, seed=42)
    np.random.seed(42)  # SRVP's loop, verbatim in its draws
    for i in range(50):
        action = ACTIONS[np.random.randint(len(ACTIONS))]
        person, trial = np.random.randint(21, 26), np.random.randint(1, 5)
        name = _name(person, action, trial)
        t0 = np.random.randint(lengths[name] - 40 + 1)
        assert (ours["names"][i], ours["starts"][i]) == (name, t0)


def test_training_dataset_and_workers(store: Path) -> None:
    cfg = preset("kth", dataset=f"kth:{store}", n_past=4, n_future=6)
    train, held_out = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    item = train[3]
    assert item["frames"].shape == (10, 1, 64, 64) and item["frames"].dtype == torch.float32
    assert 0.0 <= float(item["frames"].min()) and float(item["frames"].max()) <= 1.0
    torch.testing.assert_close(train[3]["frames"], item["frames"])
    assert {train.names[train.clip(i)[0]] for i in range(60)} == {
        "person01_boxing_d1", "person17_handwaving_d3", "person20_walking_d4"}
    assert {held_out.names[held_out.clip(i)[0]] for i in range(40)} == {"person21_walking_d2", "person25_running_d1"}
    loader = torch.utils.data.DataLoader(train, batch_size=4, sampler=range(8, 16), num_workers=2)
    batches = torch.cat([b["frames"] for b in loader])
    torch.testing.assert_close(batches, torch.stack([train[i]["frames"] for i in range(8, 16)]))
    with pytest.raises(SVGError, match="64x64 frames but the model is 128x128.*--image-size 64"):
        build_dataset(preset("kth", dataset=f"kth:{store}", image_size=128))
    with pytest.raises(SVGError, match="no .*video.* has 60 frames.*--n-past/--n-future"):
        build_dataset(preset("kth", dataset=f"kth:{store}", n_past=30, n_future=30))


def test_cli_kth_and_kth_test(raw_dir: Path, tmp_path: Path) -> None:
    from svg_cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, ["data", "kth", str(raw_dir), "--out", str(tmp_path / "k"), "--split", "savp"])
    assert result.exit_code == 0, result.output
    assert "5 videos (1 train, 4 test)" in result.output
    result = runner.invoke(app, ["data", "kth-test", str(tmp_path / "k"), "--out", str(tmp_path / "t.npz"),
                                 "--count", "6", "--length", "20", "--seed", "3"])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "t.npz", allow_pickle=False) as z:
        assert z["frames"].shape == (6, 20, 1, 64, 64) and int(z["seed"]) == 3
    result = runner.invoke(app, ["data", "kth", str(raw_dir), "--out", str(tmp_path / "k2"), "--split", "x"])
    assert result.exit_code == 2 and "'x' is not one of" in result.output  # typer checks the choices


def test_dataset_names_and_default_directory(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SVG_DATA_DIR", raising=False)
    with pytest.raises(SVGError, match="svg data kth RAW --out DIR`, then pass --data-dir DIR"):
        build_dataset(preset("kth"))
    (tmp_path / "kth").symlink_to(store)
    monkeypatch.setenv("SVG_DATA_DIR", str(tmp_path))
    assert build_dataset(preset("kth"))[0]["frames"].shape == (20, 1, 64, 64)
    assert parse_dataset("folder:/a:b") == ("folder", "/a:b")
    with pytest.raises(SVGError, match="unknown dataset 'ucf101': choose smmnist, kth, bair"):
        parse_dataset("ucf101")
