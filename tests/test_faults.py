"""Long runs survive faults: a stop signal saves and exits cleanly, divergence and a full disk
keep the last good checkpoint."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_runs import tiny_run

import svg_core.checkpoint as checkpoint
from svg_core.checkpoint import load_checkpoint, save_checkpoint
from svg_core.config import with_overrides
from svg_core.errors import SVGError
from svg_core.model import SVG
from svg_core.train import read_metrics, train

torch.set_num_threads(1)


def no_temp_files(run_dir: Path) -> bool:
    return not list(run_dir.glob(".tmp-*"))


def wait_for_steps(metrics: Path, n: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if metrics.exists() and len(metrics.read_text().splitlines()) >= n:
            return
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no {n} training steps within {timeout} s")


def test_sigterm_saves_the_step_reached_and_resume_continues(tmp_path: Path) -> None:
    sig = signal.SIGTERM
    run, config = tmp_path / "run", tmp_path / "run.json"
    config.write_text(json.dumps(tiny_run(steps=100_000).to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "svg_cli", "train", "--config", str(config), "--out", str(run)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_steps(run / "metrics.jsonl", 3, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-2000:]
    assert f"stopped by {sig.name}" in err and "Traceback" not in err
    ckpt = load_checkpoint(run)
    reached = int(read_metrics(run)["step"][-1])
    assert ckpt.step == reached >= 3 and no_temp_files(run)

    resumed = train(run, tiny_run(steps=reached + 2), resume=True, progress=False)
    assert resumed.step == reached + 2 and resumed.stopped_by is None
    assert list(read_metrics(run)["step"]) == list(range(1, reached + 3))
    full = train(tmp_path / "full", tiny_run(steps=reached + 2), progress=False)  # never interrupted
    a, b = load_checkpoint(run), load_checkpoint(tmp_path / "full")
    for name in a.model:
        torch.testing.assert_close(a.model[name], b.model[name], rtol=1e-5, atol=1e-6)
    assert resumed.loss == pytest.approx(full.loss, rel=1e-5)


def test_sigint_in_process_stops_after_the_step_with_a_checkpoint(tmp_path: Path, monkeypatch) -> None:
    real_loss, calls = SVG.training_loss, []

    def interrupted_at_step_3(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of step 3
        return real_loss(self, *args, **kwargs)

    monkeypatch.setattr(SVG, "training_loss", interrupted_at_step_3)
    result = train(tmp_path, tiny_run(steps=100), progress=False)
    assert (result.step, result.stopped_by, result.exit_code) == (3, "SIGINT", 130)
    assert load_checkpoint(tmp_path).step == 3 and no_temp_files(tmp_path)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_divergence_stops_with_the_last_good_checkpoint(tmp_path: Path) -> None:
    train(tmp_path, tiny_run(steps=2), progress=False)
    # Adam moves each weight by about lr per step; a checkpoint is due at every step
    wild = with_overrides(tiny_run(steps=50), lr=1e30, checkpoint_every=1)
    with pytest.raises(SVGError, match="loss became (nan|inf)|weights became non-finite") as info:
        train(tmp_path, wild, resume=True, progress=False)
    assert "is kept" in str(info.value)
    kept = load_checkpoint(tmp_path)
    assert 2 <= kept.step < 50 and no_temp_files(tmp_path)
    assert all(torch.isfinite(t).all() for t in kept.model.values())
    assert f"step {kept.step}" in str(info.value)  # the error names the checkpoint kept


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_mid_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    cfg = tiny_run()
    model = SVG(cfg.model)
    save_checkpoint(tmp_path, model, cfg, step=1)
    before = (tmp_path / checkpoint.CHECKPOINT_NAME).read_bytes()
    real_save = checkpoint.save_file

    def half_written(tensors, path, metadata=None):  # the disk fills up halfway through the file
        real_save(tensors, path, metadata=metadata)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        _disk_full()

    for target, fake in [("save_file", half_written), ("os.replace", _disk_full)]:
        with monkeypatch.context() as m:
            if target == "os.replace":
                m.setattr(checkpoint.os, "replace", fake)
            else:
                m.setattr(checkpoint, target, fake)
            with pytest.raises(OSError, match="No space left"):
                save_checkpoint(tmp_path, model, cfg, step=2)
        assert (tmp_path / checkpoint.CHECKPOINT_NAME).read_bytes() == before, target
        assert load_checkpoint(tmp_path).step == 1 and no_temp_files(tmp_path), target


def test_disk_full_during_training_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    train(tmp_path, tiny_run(steps=1), progress=False)
    monkeypatch.setattr(checkpoint, "save_file", _disk_full)
    with pytest.raises(SVGError, match="could not save the checkpoint of step 2 .*No space left.*intact"):
        train(tmp_path, tiny_run(steps=2), resume=True, progress=False)
    assert load_checkpoint(tmp_path).step == 1 and no_temp_files(tmp_path)
