"""A table of everyday mistakes fed to the CLI (issue 13, item 4): each must end in a one-line
`error: ...` naming the problem and a non-zero exit, never a traceback. The Predictor's table is
in test_bundle_trust.py."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_fixtures import get_bundle
from tiny_runs import tiny_run
from typer.testing import CliRunner

from svg_cli.app import app
from svg_core.config import with_overrides
from svg_core.train import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_inputs")
    paths = {"root": root, "file": root / "a_file.txt", "npy": root / "x.npy", "ctx": root / "c.npz",
             "cfg": root / "tiny.json", "bad_type": root / "bad_type.json", "not_object": root / "list.json",
             "readonly": root / "readonly"}
    paths["file"].write_text("not a folder")
    np.save(paths["npy"], np.zeros((2, 5, 1, 64, 64), np.float32))
    np.savez(paths["ctx"], frames=np.zeros((1, 3, 1, 64, 64), np.float32))
    paths["cfg"].write_text(json.dumps(tiny_run().to_dict()))
    paths["bad_type"].write_text(json.dumps({"train": {"batch_size": "4"}}))
    paths["not_object"].write_text("[1, 2]")
    paths["readonly"].mkdir()
    return paths


def _cases(f: dict[str, Path], bundle: Path) -> list[tuple[list[str], str]]:
    cfg = ["--config", str(f["cfg"])]
    new = str(f["root"] / "new_run")
    return [
        (["train", "--out", str(f["file"]), *cfg], "is a file, not a run directory"),
        (["train", "--out", str(f["file"] / "run"), *cfg], "Not a directory"),
        (["train", "--out", str(f["readonly"] / "run"), *cfg], "Permission denied"),
        (["train", "--out", new, *cfg, "--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
        (["train", "--out", new, *cfg, "--sample-every", "0"], "--sample-every must be >= 1"),
        (["train", "--out", new, *cfg, "--steps", "0"], "--steps >= 1"),
        (["train", "--out", new, "--config", str(f["bad_type"])], "batch_size must be int, got '4'"),
        (["train", "--out", new, "--config", str(f["not_object"])], "a config is a JSON object"),
        (["train", "--out", new, "--resume", "--steps", "3"], "no checkpoint"),
        (["eval", str(bundle), "--data", str(f["npy"]), "--out", str(f["root"] / "ev")], "single array"),
        (["eval", str(bundle), "--data", str(f["root"] / "nope.npz"), "--out", str(f["root"] / "ev")],
         "no such file"),
        (["rollout", str(bundle), "--context", str(f["ctx"]), "--out", str(f["ctx"])], "is the --context file"),
        (["rollout", str(bundle), "--context", str(f["ctx"]), "--out", str(f["root"] / "r.npz"),
          "--samples", "100000", "--horizon", "100000"], "GiB are free: lower --samples"),
        (["rollout", str(f["root"] / "no_bundle"), "--context", str(f["ctx"]), "--out", str(f["root"] / "r.npz")],
         "no bundle directory"),
        (["export", str(f["root"] / "no_run"), "--out", str(f["root"] / "b")], "no checkpoint"),
    ]


def test_everyday_mistakes_end_in_one_line_and_exit_1(tmp_path_factory, files, monkeypatch) -> None:
    bundle = get_bundle(tmp_path_factory, "lp").path
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):  # a read-only folder (the tests may run as root, who writes anywhere)
        if str(path).startswith(str(files["readonly"])):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    runner = CliRunner()
    for args, message in _cases(files, bundle):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), (args, result.exception)  # no uncaught exception
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
        assert re.search(re.escape(message), lines[0]), (args, lines[0])
        assert "Traceback" not in result.output


def test_sampling_before_the_first_log_line_trains_on(tmp_path: Path) -> None:
    # sample_every < log_every: the curves wait for metrics instead of stopping the run
    result = train(tmp_path, with_overrides(tiny_run(steps=2), log_every=5, sample_every=1), progress=False)
    assert result.step == 2 and (tmp_path / "samples" / "step_0000001.gif").exists()


def test_a_run_killed_mid_save_is_cleaned_at_its_next_start(tmp_path: Path) -> None:
    train(tmp_path, tiny_run(steps=1), progress=False)
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    stale = tmp_path / f".tmp-{dead}-abc.safetensors"
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".tmp-{os.getppid()}-abc.safetensors"  # a live writer's file stays
    live.write_bytes(b"x")
    train(tmp_path, tiny_run(steps=2), resume=True, progress=False)
    assert not stale.exists() and live.exists()


def test_a_truncated_mkv_is_reported_not_used(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    from svg_core.data.videos import read_video
    from svg_core.errors import SVGError

    whole, cut = tmp_path / "whole.mkv", tmp_path / "cut.mkv"
    with av.open(str(whole), "w") as container:  # MKV counts no frames: only its duration tells
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(50):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 10])
    assert len(read_video(whole)) == 50
    with pytest.raises(SVGError, match="cut.mkv is truncated: its header announces"):
        read_video(cut)


def test_an_export_killed_midway_leaves_nothing_after_the_next_one(tmp_path: Path) -> None:
    from svg_runtime.atomic import make_temp_dir, remove_stale_temp_files

    dead = 2**22 + 12345  # no such process
    stale = tmp_path / f".bundle.partial-{dead}-x1"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "step.onnx").write_bytes(b"x")
    ours = make_temp_dir(tmp_path, ".bundle.partial")  # this process's staging folder is live
    other = tmp_path / ".other.partial-1-x"  # another bundle's
    other.mkdir()
    assert remove_stale_temp_files(tmp_path, ".bundle.partial") == [stale]
    assert not stale.exists() and ours.is_dir() and other.is_dir()
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(ours).st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
