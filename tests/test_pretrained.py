"""Pretrained bundles shipped as package data: resolution by name, errors, the shipped bundle itself."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

from svg_cli.app import app
from svg_runtime import Predictor, SVGRuntimeError
from svg_runtime.manifest import load_schema, read_manifest
from svg_runtime.pretrained import available, model_card, pretrained_root, resolve_bundle

NAME = "smmnist-1digit"
ROOT = Path(__file__).resolve().parents[1]
CARD_KEYS = {"name", "commands", "steps", "training_minutes", "evaluation", "model", "train"}


def test_the_default_bundle_is_shipped_and_small():
    assert NAME in available()
    bundle = resolve_bundle(f"pretrained:{NAME}")
    assert bundle == pretrained_root() / NAME and bundle.is_dir()
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert size < 10 * 2**20, f"{bundle} holds {size / 2**20:.1f} MiB: pretrained bundles must stay under 10 MB"


def test_paths_pass_through_unchanged(tmp_path):
    assert resolve_bundle(tmp_path) == tmp_path
    assert resolve_bundle(str(tmp_path)) == tmp_path


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(SVGRuntimeError, match=f"unknown pretrained bundle 'nope'.*pretrained:{NAME}"):
        Predictor.load("pretrained:nope")


def test_shipped_manifest_validates_and_the_card_is_complete():
    manifest = read_manifest(resolve_bundle(f"pretrained:{NAME}"))  # the runtime's own validator
    jsonschema.validate(manifest, load_schema())
    card = model_card(f"pretrained:{NAME}")
    assert CARD_KEYS <= set(card), f"model card misses {CARD_KEYS - set(card)}"
    ev = card["evaluation"]
    for metric in ("ssim", "psnr"):
        assert {"best", "copy_last", "black"} <= set(ev[metric])


def test_package_data_globs_cover_every_shipped_file():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["svg_runtime"]
    for path in pretrained_root().rglob("*"):
        if path.is_file():
            rel = path.relative_to(pretrained_root().parent).as_posix()
            assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not package data: add a glob to pyproject.toml"


def test_load_by_name_samples_frames():
    p = Predictor.load(f"pretrained:{NAME}", threads=1)
    context = np.zeros((1, 5, *p.spec.frame_shape), np.float32)
    context[:, :, :, 20:40, 20:30] = 1.0  # a bar moving nowhere: enough to run the graphs
    out = p.sample(p.observe(context), n_samples=2, horizon=3, seed=0)
    assert out.frames.shape == (1, 2, 3, *p.spec.frame_shape)
    assert np.isfinite(out.frames).all() and out.frames.min() >= 0 and out.frames.max() <= 1


def test_cli_rollout_by_name(tmp_path):
    clip = np.zeros((5, 64, 64), np.uint8)
    clip[:, 10:30, 10:20] = 255
    np.save(tmp_path / "clip.npy", clip)
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(app, ["rollout", f"pretrained:{NAME}", "--context", str(tmp_path / "clip.npy"),
                                      "--samples", "2", "--horizon", "2", "--seed", "0", "--threads", "1",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert np.load(out)["frames"].shape[:3] == (1, 2, 2)


def test_cli_rollout_unknown_name_is_one_line(tmp_path):
    np.save(tmp_path / "clip.npy", np.zeros((5, 64, 64), np.uint8))
    result = CliRunner().invoke(app, ["rollout", "pretrained:nope", "--context", str(tmp_path / "clip.npy"),
                                      "--out", str(tmp_path / "o.gif")])
    assert result.exit_code == 1 and "available are" in result.output


def test_eval_accepts_a_pretrained_name():
    from svg_core.evaluation.samplers import BundleSampler, load_sampler

    sampler = load_sampler(f"pretrained:{NAME}")
    assert isinstance(sampler, BundleSampler) and sampler.kind == "lp"


def test_pack_dedups_weights_and_keeps_the_rollout(tmp_path_factory, tmp_path):
    from bundle_fixtures import get_bundle

    from svg_export.pack import WEIGHTS_NAME, pack_bundle

    src = get_bundle(tmp_path_factory, "lp").path
    manifest = pack_bundle(src, tmp_path / "packed")
    size = lambda d: sum(p.stat().st_size for p in d.iterdir() if p.is_file())  # noqa: E731
    assert (tmp_path / "packed" / WEIGHTS_NAME).is_file() and size(tmp_path / "packed") < 0.75 * size(src)
    jsonschema.validate(read_manifest(tmp_path / "packed"), load_schema())
    assert manifest["packing"]["rollout_vs_source"]["max_abs_err"] < 1e-2
