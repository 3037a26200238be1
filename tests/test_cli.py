"""CLI conventions: choices shown as choices, one name per option (old names hidden), --device auto,
`svg doctor`, the folder preset sized for the machine, progress output fit for logs."""

from __future__ import annotations

import io

import pytest
from typer.testing import CliRunner

from svg_cli import checks as doctor_mod
from svg_cli.app import app
from svg_runtime.progress import progress_bar

runner = CliRunner()


def _help(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "250"})  # rich wraps at COLUMNS
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(("command", "choices"), [
    (("train",), ["<lp|fp|det>", "<auto|cpu|cuda>", "<none|bf16|fp16>"]),
    (("rollout",), ["<auto|ort|trt>"]),
    (("eval",), ["<gaussian|uniform7>", "<auto|cpu|cuda>"]),
    (("eval-plot",), ["<best|worst|mean>"]),
    (("data", "kth"), ["<svg|savp>", "<squash|crop>"]),
])
def test_choices_are_shown(command, choices):
    text = _help(*command)
    for choice in choices:
        assert choice in text, f"{choice} missing from `svg {' '.join(command)} --help`"


@pytest.mark.parametrize(("command", "shown", "hidden"), [
    (("data", "kth"), ["--force", "--image-size"], ["--overwrite", "--size "]),
    (("data", "bair"), ["--force"], ["--overwrite"]),
    (("data", "folder"), ["--image-size"], ["--size "]),
    (("bench",), ["--batch-size"], ["--batch "]),
    (("export",), ["--force"], ["--overwrite"]),
    (("train",), ["--image-size", "--batch-size"], []),
])
def test_one_name_per_option(command, shown, hidden):
    text = _help(*command)
    for name in shown:
        assert name in text
    for name in hidden:
        assert name not in text


def test_old_option_names_still_work(tmp_path):
    """--overwrite / --size are hidden aliases: accepted, and they reach the command."""
    result = runner.invoke(app, ["data", "kth", str(tmp_path), "--out", str(tmp_path / "o"), "--size", "64",
                                 "--overwrite"])
    assert result.exit_code == 1 and "no KTH video" in result.output  # parsed, then failed on the empty folder


def test_shell_completion_is_offered():
    assert "--install-completion" in _help() and "--show-completion" in _help()


def test_device_auto_resolves_to_what_is_usable():
    import torch

    from svg_cli.common import resolve_device

    assert resolve_device("cpu", torch_side=True) == "cpu"
    assert resolve_device("auto", torch_side=True) == ("cuda" if torch.cuda.is_available() else "cpu")
    import onnxruntime as ort

    ort_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert resolve_device("auto", torch_side=False) == ("cuda" if ort_cuda else "cpu")


def test_doctor_lists_usable_providers():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    import onnxruntime as ort

    lines = {line.split("  ")[0]: line for line in result.output.splitlines()}
    assert "CPUExecutionProvider" in lines["onnxruntime providers"]
    assert ort.__version__ in lines["onnxruntime package"]
    assert "usable" not in lines["onnxruntime providers"]
    assert doctor_mod.usable_providers(ort)[-1] == "CPUExecutionProvider"


def test_doctor_flags_two_onnxruntime_builds(monkeypatch):
    monkeypatch.setattr(doctor_mod, "version_of", lambda dist: {"onnxruntime": "1.20.0", "onnxruntime-gpu": "1.20.0",
                                                                "numpy": "2"}.get(dist))
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "onnxruntime 1.20.0, onnxruntime-gpu 1.20.0: several builds share one module" in result.output


@pytest.mark.parametrize(("device", "preset"), [("cpu", "smmnist-small"), ("cuda", "smmnist"), ("cuda:1", "smmnist")])
def test_folder_without_preset_gets_one_for_the_machine(device, preset, capsys):
    from svg_cli.train import _default_preset
    from svg_core.config import preset as make_preset

    assert _default_preset("folder:videos", device) == preset
    assert f"using --preset {preset}" in capsys.readouterr().err
    assert make_preset(preset).model.width == (16 if preset == "smmnist-small" else 64)
    assert _default_preset("kth:data/kth", device) == "kth"


def test_progress_in_a_log_is_plain_lines():
    log = io.StringIO()
    for _ in progress_bar(range(1000), stream=log, desc="work"):
        pass
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) <= 3 and lines[-1].startswith("work: 100%") and "1000/1000" in lines[-1]
