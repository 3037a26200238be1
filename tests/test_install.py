"""The base install: a fresh venv with the wheel and its [cpu] extra, no torch.

Commands that need no torch run there; the others answer with one line naming the extra. Building
the venv takes about 30 s (pip resolves from the configured index or cache): marked slow, and
skipped when pip cannot reach any package source (offline without a cache).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from svg_runtime.extras import EXTRA_OF_MODULE

REPO = Path(__file__).resolve().parents[1]
TRAIN_HINT = 'pip install "svg-video[train]"'
NEEDS_TRAIN = {  # command -> arguments; each must fail with the one-line hint, before touching its inputs
    "train": ["--out", "run", "--steps", "1"],
    "export": ["run", "--out", "bundle"],
    "eval": ["run", "--data", "test.npz", "--out", "eval"],
    "eval-plot": ["results.json", "--out", "curves.png"],
    "eval-trajectories": ["run", "--out", "traj"],
    "bench": ["--train"],
}
NOT_SOURCES = {".git", ".ci", ".venv", ".shim", "build", "dist", "runs", "bundles", "eval", "data", ".pytest_cache",
               ".ruff_cache", ".benchmarks", "svg_video.egg-info"}
OFFLINE_SIGNS = ("No matching distribution", "Could not find a version", "NewConnectionError",
                 "Temporary failure in name resolution", "Network is unreachable")


def _run(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding svg-video[cpu] and nothing of [train]."""
    root = tmp_path_factory.mktemp("base_install")
    source = root / "src"  # a copy: building in the checkout would leave build/ and *.egg-info there
    shutil.copytree(REPO, source, ignore=lambda d, names: [n for n in names if Path(d) == REPO and n in NOT_SOURCES])
    wheel = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                  str(root / "dist"), str(source)], root, timeout=300)
    assert wheel.returncode == 0, wheel.stderr
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    whl = next((root / "dist").glob("svg_video-*.whl"))
    install = _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", f"{whl}[cpu]"], root, timeout=600)
    if install.returncode != 0 and any(s in install.stderr for s in OFFLINE_SIGNS):
        pytest.skip(f"pip cannot reach the base dependencies (offline?): {install.stderr.strip()[-200:]}")
    assert install.returncode == 0, install.stderr
    return bin_dir


@pytest.mark.slow
def test_base_install_has_no_torch(base_venv, tmp_path):
    probe = "import importlib.util as u; print([m for m in ('torch', 'onnx', 'matplotlib', 'mlxtend') if u.find_spec(m)])"
    assert _run([str(base_venv / "python"), "-c", probe], tmp_path).stdout.strip() == "[]"
    result = _run([str(base_venv / "svg"), "--version"], tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("svg-video "), result.stderr
    doctor = _run([str(base_venv / "svg"), "doctor"], tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "CPUExecutionProvider" in doctor.stdout and re.search(r"^torch\s+not installed", doctor.stdout, re.M)
    example = _run([str(base_venv / "python"), "-m", "svg_examples.planning_loop", "--help"], tmp_path)
    assert example.returncode == 0 and "--bundle" in example.stdout, example.stderr  # examples ship in the wheel


@pytest.mark.slow
def test_base_install_builds_the_same_test_set(base_venv, tmp_path):
    """`svg data smmnist` runs without torch, from the shipped digits, and writes the same file as here."""
    from svg_core.data.smmnist import build_smmnist_test_set

    args = ["data", "smmnist", "--num-digits", "1", "--count", "3", "--length", "6", "--out", "base.npz"]
    result = _run([str(base_venv / "svg"), *args], tmp_path)
    assert result.returncode == 0, result.stderr
    here = build_smmnist_test_set(tmp_path / "here.npz", num_digits=1, count=3, length=6, digits="bundled")
    with np.load(tmp_path / "base.npz") as base, np.load(here) as ref:
        assert base["frames"].shape == (3, 6, 1, 64, 64) and base["frames"].max() > 200
        np.testing.assert_array_equal(base["frames"], ref["frames"])


@pytest.mark.slow
def test_base_install_rolls_out_a_bundle(base_venv, tmp_path, tmp_path_factory):
    from bundle_fixtures import get_bundle

    bundle = get_bundle(tmp_path_factory, "lp").path
    np.save(tmp_path / "context.npy", np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8))
    args = ["rollout", str(bundle), "--context", "context.npy", "--samples", "2", "--horizon", "3", "--seed", "1",
            "--out", "out"]
    result = _run([str(base_venv / "svg"), *args], tmp_path)
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out" / "rollout.npz") as out:
        assert out["frames"].shape == (1, 2, 3, 1, 64, 64)
    assert (tmp_path / "out" / "rollout.gif").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(NEEDS_TRAIN))
def test_base_install_names_the_train_extra(base_venv, tmp_path, command):
    result = _run([str(base_venv / "svg"), command, *NEEDS_TRAIN[command]], tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: `svg {command}` needs PyTorch, which is not installed: {TRAIN_HINT}"], result.stderr


def test_every_extra_hint_is_one_pip_line():
    from svg_runtime.extras import missing_extra_message

    for module in EXTRA_OF_MODULE:
        message = missing_extra_message(f"{module}.sub", "`svg x`")
        assert message.startswith("`svg x` needs ") and "pip install " in message and "\n" not in message
    assert missing_extra_message("yaml") is None


def test_cli_without_onnxruntime_names_the_extras(monkeypatch, tmp_path, tmp_path_factory):
    """No onnxruntime (a base install without [cpu]/[gpu]): rollout says which extra, in one line."""
    from bundle_fixtures import get_bundle
    from typer.testing import CliRunner

    from svg_cli.app import app

    bundle = get_bundle(tmp_path_factory, "lp").path
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    np.save(tmp_path / "c.npy", np.zeros((3, 64, 64), np.uint8))
    result = CliRunner().invoke(app, ["rollout", str(bundle), "--context", str(tmp_path / "c.npy"),
                                      "--out", str(tmp_path / "o.gif")])
    assert result.exit_code == 1
    assert 'pip install "svg-video[cpu]"' in result.output and "svg-video[gpu]" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
