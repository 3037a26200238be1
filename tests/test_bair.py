"""BAIR: TFRecords written by the `tfrecord` package, read back without TensorFlow, CRCs checked."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner
from video_fixtures import bair_record, write_bair_file

from svg_core.config import preset
from svg_core.data.bair import convert_bair
from svg_core.data.clips import load_index, open_frames
from svg_core.data.tfrecord import masked_crc, parse_example, read_records
from svg_core.datasets import build_dataset
from svg_core.errors import SVGError

# file name -> number of records; natural order puts traj_2 before traj_10
TRAIN = {"traj_10_to_11.tfrecords": 1, "traj_2_to_3.tfrecords": 2}
TEST = {"traj_0_to_1.tfrecords": 1}


@pytest.fixture(scope="module")
def bair_raw(tmp_path_factory) -> tuple[Path, dict[str, list]]:
    """softmotion30_44k/{train,test}/*.tfrecords with 30-step records; returns the truth per video name."""
    root = tmp_path_factory.mktemp("bair")
    rng, truth = np.random.default_rng(0), {}
    for split, files in (("train", TRAIN), ("test", TEST)):
        for fname, n in files.items():
            records = []
            for k in range(n):
                datum, *arrays = bair_record(rng)
                records.append(datum)
                truth[f"{split}/{Path(fname).stem}/{k:03d}"] = arrays
            write_bair_file(root / "softmotion30_44k" / split / fname, records)
    return root, truth


@pytest.fixture(scope="module")
def store(bair_raw) -> Path:
    return convert_bair(bair_raw[0], bair_raw[0] / "converted")


def test_convert_keeps_frames_actions_positions(store: Path, bair_raw) -> None:
    truth = bair_raw[1]
    index = load_index(store)
    names = [v["name"] for v in index["videos"]]
    assert names == ["train/traj_2_to_3/000", "train/traj_2_to_3/001", "train/traj_10_to_11/000", "test/traj_0_to_1/000"]
    assert index["channels"] == 3 and index["image_size"] == 64 and index["n_frames"] == 4 * 30
    frames, actions, positions = (open_frames(store, n) for n in ("frames.npy", "actions.npy", "endeffector_pos.npy"))
    assert frames.shape == (120, 3, 64, 64) and actions.shape == (120, 4) and positions.shape == (120, 3)
    for video in index["videos"]:
        want_frames, want_actions, want_positions = truth[video["name"]]
        s = slice(video["start"], video["start"] + 30)
        np.testing.assert_array_equal(frames[s], want_frames.transpose(0, 3, 1, 2))  # image_aux1, not image_main
        np.testing.assert_array_equal(actions[s], want_actions)
        np.testing.assert_array_equal(positions[s], want_positions)
    assert index["videos"][-1]["split"] == "test" and index["videos"][-1]["file"] == "test/traj_0_to_1.tfrecords"


def test_reader_agrees_with_the_tfrecord_package(bair_raw) -> None:
    from tfrecord.reader import tfrecord_loader
    from tfrecord.writer import TFRecordWriter

    path = bair_raw[0] / "softmotion30_44k" / "train" / "traj_2_to_3.tfrecords"
    theirs = list(tfrecord_loader(str(path), None))
    ours = [parse_example(r) for r in read_records(path)]
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs, strict=True):
        assert sorted(a) == sorted(b)
        assert a["0/image_main/encoded"] == [b["0/image_main/encoded"]]
        np.testing.assert_array_equal(a["29/action"], b["29/action"])
    assert struct.pack("<I", masked_crc(b"123456789")) == TFRecordWriter.masked_crc(b"123456789")


def _copy_raw(bair_raw, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "raw"
    shutil.copytree(bair_raw[0] / "softmotion30_44k", root / "softmotion30_44k")
    return root, root / "softmotion30_44k" / "train" / "traj_2_to_3.tfrecords"


def test_bad_crc_and_truncation_are_refused_and_leave_nothing(bair_raw, tmp_path: Path) -> None:
    root, victim = _copy_raw(bair_raw, tmp_path)
    data = bytearray(victim.read_bytes())
    first_len = struct.unpack("<Q", data[:8])[0]
    data[12 + first_len + 16 + 500] ^= 0xFF  # a byte inside the second record's data
    victim.write_bytes(bytes(data))
    with pytest.raises(SVGError, match="traj_2_to_3.tfrecords: bad CRC on the data of record 1"):
        convert_bair(root, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
    data[12 + first_len + 16 + 500] ^= 0xFF
    victim.write_bytes(bytes(data[:-100]))
    with pytest.raises(SVGError, match="truncated inside record 1"):
        convert_bair(root, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_foreign_records_and_missing_dirs(tmp_path: Path) -> None:
    write_bair_file(tmp_path / "softmotion30_44k" / "test" / "x.tfrecords",
                    [{"0/image_main/encoded": (b"\0" * 12288, "byte")}])
    with pytest.raises(SVGError, match="record 0 has no '0/image_aux1/encoded' feature: not a BAIR"):
        convert_bair(tmp_path, tmp_path / "out")
    with pytest.raises(SVGError, match="no TFRecord files"):
        convert_bair(tmp_path / "softmotion30_44k" / "test", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_training_dataset_has_actions(store: Path, bair_raw) -> None:
    cfg = preset("bair", dataset=f"bair:{store}")  # 2 -> 10 frames, RGB
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    item = train[5]
    assert item["frames"].shape == (12, 3, 64, 64) and item["actions"].shape == (12, 4)
    assert item["endeffector_pos"].shape == (12, 3)
    video, t0 = train.clip(5)
    want_frames, want_actions, _ = bair_raw[1][train.names[video]]
    torch.testing.assert_close(item["frames"], torch.from_numpy(want_frames[t0:t0 + 12].transpose(0, 3, 1, 2)) / 255)
    torch.testing.assert_close(item["actions"], torch.from_numpy(want_actions[t0:t0 + 12]))
    assert set(test.names) == {"test/traj_0_to_1/000"}
    with pytest.raises(SVGError, match="holds RGB \\(3 channels\\) frames but the model has 1 channel"):
        build_dataset(preset("bair", dataset=f"bair:{store}", channels=1))
    with pytest.raises(SVGError, match="holds the 'bair' dataset, not 'kth'"):
        build_dataset(preset("kth", dataset=f"kth:{store}"))


def test_cli_bair(bair_raw, tmp_path: Path) -> None:
    from svg_cli.app import app

    result = CliRunner().invoke(app, ["data", "bair", str(bair_raw[0]), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "4 videos (3 train, 1 test), 120 frames" in result.output
