"""`svg train --resume` continues the run as it was saved (issue 13, item 1), through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny_runs import tiny_run
from typer.testing import CliRunner

from svg_cli.app import app
from svg_core.checkpoint import load_checkpoint
from svg_core.config import with_overrides

torch.set_num_threads(1)


def _config_file(path: Path, steps: int) -> Path:
    # fp and bf16, unlike the CLI's defaults (--model lp) and the smmnist preset (fp32, batch 100)
    cfg = with_overrides(tiny_run(steps=steps), kind="fp", amp="bf16")
    path.write_text(json.dumps(cfg.to_dict()))
    return path


def _train(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["train", *args])
    return result.exit_code, result.output


def test_resume_through_the_cli_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    code, out = _train("--config", str(_config_file(tmp_path / "c4.json", 4)), "--out", str(full))
    assert code == 0, out
    saved = json.loads((full / "config.json").read_text())
    assert saved["model"]["kind"] == "fp"  # the --model default no longer overwrites the config file's

    code, out = _train("--config", str(_config_file(tmp_path / "c2.json", 2)), "--out", str(part))
    assert code == 0, out
    # the README's command, with nothing but --steps: the run's own config must come back
    code, out = _train("--out", str(part), "--resume", "--steps", "4")
    assert code == 0, out
    assert "steps 2 -> 4" in out
    assert json.loads((part / "config.json").read_text()) == saved
    a, b = load_checkpoint(full), load_checkpoint(part)
    assert a.step == b.step == 4 and a.config == b.config
    assert a.config.train.amp == "bf16" and a.config.train.batch_size == 2
    for name, weight in a.model.items():
        assert torch.equal(weight, b.model[name]), name


def test_resume_refuses_options_that_would_change_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out = _train("--config", str(_config_file(tmp_path / "c.json", 1)), "--out", str(run))
    assert code == 0, out
    before = (run / "checkpoint.safetensors").read_bytes()
    for args, named in ((["--width", "8"], "width 4 -> 8"), (["--model", "lp"], "kind 'fp' -> 'lp'"),
                        (["--dataset", "kth"], "dataset"), (["--batch-size", "4"], "batch_size 2 -> 4"),
                        (["--preset", "kth"], "--preset")):
        code, out = _train("--out", str(run), "--resume", "--steps", "3", *args)
        assert code == 1, (args, out)
        assert named in out and "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert (run / "checkpoint.safetensors").read_bytes() == before
    code, out = _train("--out", str(run), "--resume", "--steps", "1")
    assert code == 1 and "already at step 1" in out
