"""`svg doctor`: what this installation can run: versions, usable onnxruntime providers, GPU, TensorRT.

Torch-free: torch is reported only when installed, and imported only then. A provider counts as
usable only if a session actually created with it keeps it (onnxruntime falls back to the CPU
silently when, e.g., the CUDA libraries are missing).
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

# A one-node ONNX graph (y = Relu(x), opset 17), to try each provider without needing the onnx package.
PROBE_ONNX = bytes.fromhex(
    "080812003a370a0c0a0178120179220452656c75120570726f62655a0f0a0178120a0a08080112040a020801620f0a01"
    "79120a0a08080112040a02080142040a001011")
ORT_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")


@dataclass
class Check:
    name: str
    value: str
    ok: bool = True  # False: a problem the user should fix (the value says how)


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, value: str, ok: bool = True) -> None:
        self.checks.append(Check(name, value, ok))

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def version_of(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def run_doctor() -> DoctorReport:
    """Collect every check (seconds at most: one tiny session per provider)."""
    from svg_runtime.version import __version__

    report = DoctorReport()
    report.add("svg-video", __version__)
    report.add("python", f"{platform.python_version()} ({sys.executable})")
    report.add("platform", f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs")
    report.add("numpy", version_of("numpy") or "missing")
    _onnxruntime(report)
    _torch(report)
    _gpu(report)
    _tensorrt(report)
    report.add("PyAV (mp4, folder videos)", version_of("av") or "not installed: pip install av")
    return report


def _onnxruntime(report: DoctorReport) -> None:
    installed = [f"{d} {version_of(d)}" for d in ORT_PACKAGES if version_of(d)]
    if len(installed) > 1:
        report.add("onnxruntime packages", f"{', '.join(installed)}: several builds share one module, the last "
                   "installed wins; keep one (pip uninstall onnxruntime, then reinstall onnxruntime-gpu)", ok=False)
    elif installed:
        report.add("onnxruntime package", installed[0])
    if importlib.util.find_spec("onnxruntime") is None:
        report.add("onnxruntime", 'missing: pip install "svg-video[cpu]" (or "svg-video[gpu]")', ok=False)
        return
    import onnxruntime as ort

    report.add("onnxruntime providers", ", ".join(usable_providers(ort)) or "none usable", ok=True)


def usable_providers(ort) -> list[str]:
    """The available providers that a session really runs on here (CPU, CUDA, TensorRT...)."""
    usable = []
    for provider in ort.get_available_providers():
        if provider == "AzureExecutionProvider":  # remote endpoints, not a local device
            continue
        try:
            session = ort.InferenceSession(PROBE_ONNX, providers=[provider])
        except Exception:  # noqa: BLE001 - any failure means: not usable here
            continue
        if provider in session.get_providers():
            usable.append(provider)
    return usable


def _torch(report: DoctorReport) -> None:
    if importlib.util.find_spec("torch") is None:
        report.add("torch", 'not installed (training, export, eval need it: pip install "svg-video[train]")')
        return
    import torch

    cuda = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "no CUDA"
    report.add("torch", f"{torch.__version__} ({cuda}, {torch.get_num_threads()} threads)")


def _gpu(report: DoctorReport) -> None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        report.add("GPU", "none found (no nvidia-smi)")
        return
    try:
        out = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        out = f"nvidia-smi failed: {e}"
    report.add("GPU", "; ".join(out.splitlines()) or "none found by nvidia-smi")


def _tensorrt(report: DoctorReport) -> None:
    if importlib.util.find_spec("tensorrt") is None:
        report.add("TensorRT", 'not installed (svg export --trt: pip install "svg-video[gpu]"; Jetson: JetPack\'s)')
        return
    try:
        import tensorrt

        report.add("TensorRT", tensorrt.__version__)
    except Exception as e:  # noqa: BLE001 - a broken install is a finding, not a crash
        report.add("TensorRT", f"installed but does not import: {e}", ok=False)
