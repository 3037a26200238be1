"""`svg bench BUNDLE`: sampling-step speed of a bundle on every available backend, side by side
with PyTorch eager in the same process, FLOPs counted and the machine's matmul peak measured.

All backends take turns round by round (a load change on a shared machine hits all alike); each
turn times `steps / rounds` consecutive steps of rollouts that keep going (a real rollout's
state, caches warm). Speed-ups are ratios of medians from this one run.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svg_bench.flops import matmul_peak, onnx_flops, ort_matmul_peak, torch_flops
from svg_bench.runners import Runner, make_runners
from svg_core import sampling
from svg_core.checkpoint import load_model
from svg_core.errors import SVGError
from svg_core.model import SVG
from svg_runtime.manifest import ModelSpec, read_manifest

log = logging.getLogger("svg")
CONTEXT_FRAMES = 5


@dataclass(frozen=True)
class InferBenchOptions:
    """What `svg bench BUNDLE...` measures."""

    bundles: tuple[Path, ...]
    batches: tuple[int, ...] = (1, 16, 100)
    steps: int = 20  # timed steps per backend and batch size
    rounds: int = 4  # the steps are split into this many turns per backend
    warmup: int = 2
    checkpoint: Path | None = None  # the PyTorch model; default: the path in the first bundle's manifest
    threads: int | None = None  # torch and onnxruntime intra-op threads (None: their defaults)
    cells: bool = True  # also time the per-cell graphs chained with session.run
    peak: bool = True  # measure the matmul peaks (2048^3)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.bundles:
            raise SVGError("give at least one bundle directory to benchmark")
        if not self.batches or min(self.batches) < 1:
            raise SVGError(f"batch sizes must be >= 1, got {list(self.batches)}")
        if self.steps < 1 or self.rounds < 1 or self.warmup < 0:
            raise SVGError("need --steps >= 1, rounds >= 1 and warmup >= 0")


@dataclass
class Result:
    backend: str
    batch: int
    steps: int
    median_ms: float
    p90_ms: float
    frames_per_s: float
    flops_per_step: int
    gflops: float
    speedup_vs_torch: float | None = None
    pct_fp32_peak: float | None = None
    pct_bf16_peak: float | None = None


@dataclass
class Report:
    machine: dict[str, Any]
    peak_gflops: dict[str, float]
    flops_per_frame: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "results": [asdict(r) for r in self.results]}


class _CpuMeter:
    """CPU time used by other processes while the benchmark runs (Linux /proc/stat), in % of all cores."""

    def __init__(self) -> None:
        self.start = (self._busy(), time.process_time(), time.perf_counter())

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return None
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    def other_pct(self) -> float | None:
        busy0, cpu0, wall0 = self.start
        busy1 = self._busy()
        if busy0 is None or busy1 is None:
            return None
        other = (busy1 - busy0) - (time.process_time() - cpu0)
        return round(100 * max(other, 0.0) / ((time.perf_counter() - wall0) * (os.cpu_count() or 1)), 1)


def _load_torch_model(opts: InferBenchOptions, manifest: dict[str, Any]) -> tuple[SVG | None, str | None]:
    path = opts.checkpoint or Path(manifest["checkpoint"]["path"])
    if not Path(path).exists():
        return None, f"no checkpoint at {path} (pass --checkpoint to compare with PyTorch)"
    model, _ = load_model(path)
    return model, None


def _time_runners(runners: list[Runner], batch: int, spec: ModelSpec, opts: InferBenchOptions) -> list[list[float]]:
    """Per runner, the seconds of each timed step at this batch size."""
    rng = np.random.default_rng(opts.seed)
    context = rng.random((batch, CONTEXT_FRAMES, *spec.frame_shape), dtype=np.float32)
    z = spec.latent_dim
    eps = [rng.standard_normal((batch, z), dtype=np.float32) if z else None for _ in range(4)]
    for runner in runners:
        runner.start(context)
        for i in range(opts.warmup):
            runner.step(eps[i % 4])
    times: list[list[float]] = [[] for _ in runners]
    per_round = -(-opts.steps // opts.rounds)
    for r in range(opts.rounds):
        order = list(range(len(runners)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            runners[i].step(eps[3])  # untimed: the first step after another backend ran meets cold caches
            for k in range(min(per_round, opts.steps - len(times[i]))):
                start = time.perf_counter()
                runners[i].step(eps[k % 4])
                times[i].append(time.perf_counter() - start)
    return times


def _result(name: str, batch: int, seconds: list[float], flops: int, torch_ms: float | None,
            peaks: dict[str, float]) -> Result:
    ms = np.array(seconds) * 1e3
    median, p90 = float(np.median(ms)), float(np.percentile(ms, 90))
    gflops = flops / (median / 1e3) / 1e9
    return Result(backend=name, batch=batch, steps=len(ms), median_ms=round(median, 3), p90_ms=round(p90, 3),
                  frames_per_s=round(batch / (median / 1e3), 1), flops_per_step=flops, gflops=round(gflops, 1),
                  speedup_vs_torch=round(torch_ms / median, 2) if torch_ms else None,
                  pct_fp32_peak=round(100 * gflops / peaks["fp32"], 1) if "fp32" in peaks else None,
                  pct_bf16_peak=round(100 * gflops / peaks["bf16"], 1) if "bf16" in peaks else None)


def run_bench(opts: InferBenchOptions) -> Report:
    """Benchmark every bundle on every available backend against PyTorch eager, at each batch size."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    manifests = [read_manifest(b) for b in opts.bundles]
    spec = ModelSpec.from_manifest(manifests[0])
    for bundle, manifest in zip(opts.bundles, manifests, strict=True):
        if ModelSpec.from_manifest(manifest) != spec:
            raise SVGError(f"{bundle} holds a different model than {opts.bundles[0]}: compare bundles of one model")
    meter, load_before = _CpuMeter(), os.getloadavg()
    model, why_not = _load_torch_model(opts, manifests[0])
    report = Report(machine={}, peak_gflops=_peaks(opts) if opts.peak else {}, flops_per_frame={})
    if why_not:
        report.skipped.append({"backend": "torch", "reason": why_not})
    runners: list[Runner] = []
    step_graph: dict[str, Path | None] = {}  # runner -> the step graph whose FLOPs it runs
    for i, (bundle, manifest) in enumerate(zip(opts.bundles, manifests, strict=True)):
        found, skipped = make_runners(Path(bundle), model if i == 0 else None, opts.threads,
                                      _label(opts.bundles, manifests, i), opts.cells)
        runners += found
        report.skipped += skipped
        step_graph.update({r.name: None if r.name == "torch" else Path(bundle) / manifest["graphs"]["step"]["file"]
                           for r in found})
    report.flops_per_frame = _flop_counts(opts.bundles[0], manifests[0], model, spec)
    for batch in opts.batches:
        times = _time_runners(runners, batch, spec, opts)
        torch_ms = float(np.median(times[0])) * 1e3 if model is not None else None
        counted = {p: sum(onnx_flops(p, batch).values()) for p in set(step_graph.values()) if p is not None}
        for runner, seconds in zip(runners, times, strict=True):
            graph = step_graph[runner.name]
            flops = counted[graph] if graph else report.flops_per_frame["torch"] * batch
            report.results.append(_result(runner.name, batch, seconds, flops, torch_ms, report.peak_gflops))
        log.info("batch %d done", batch)
    report.machine = _machine(opts, load_before, meter.other_pct())
    return report


def _label(bundles: tuple[Path, ...], manifests: list[dict], i: int) -> str:
    """How a bundle's backends are told apart: its precision, or its directory name when two
    bundles share one; nothing for a single fp32 bundle."""
    precisions = [m["precision"] for m in manifests]
    if len(bundles) == 1:
        return "" if precisions[0] == "fp32" else precisions[0]
    return precisions[i] if precisions.count(precisions[i]) == 1 else Path(bundles[i]).name


def _flop_counts(bundle: Path, manifest: dict[str, Any], model: SVG | None, spec: ModelSpec) -> dict[str, Any]:
    """FLOPs of one sampling step per frame: counted on the ONNX step graph and, as a cross-check,
    by FlopCounterMode on the PyTorch step (batch 2, halved)."""
    counted = onnx_flops(Path(bundle) / manifest["graphs"]["step"]["file"], 1)
    out: dict[str, Any] = {"onnx": sum(counted.values()), "onnx_by_op": counted, "torch": None}
    if model is None:
        out["torch"] = out["onnx"]
        return out
    with torch.inference_mode():
        state = sampling.observe(model.eval(), torch.rand(2, 2, *spec.frame_shape))
    eps = torch.zeros(2, spec.z_dim) if spec.has_latent else None
    out["torch"] = torch_flops(lambda: sampling.step(model, state, eps)) // 2
    return out


def _peaks(opts: InferBenchOptions) -> dict[str, float]:
    """torch's fp32 and bf16 matmul peaks (the targets' reference), and onnxruntime's own fp32 and
    int8 ones (what its kernels can reach on this CPU)."""
    peaks = {"fp32": round(matmul_peak(torch.float32), 1), "bf16": round(matmul_peak(torch.bfloat16), 1)}
    for name, dtype in (("fp32_ort", "float32"), ("int8_ort", "int8")):
        try:
            peaks[name] = round(ort_matmul_peak(dtype, opts.threads), 1)
        except Exception as e:  # e.g. an onnxruntime build without MatMulInteger: leave it out
            log.warning("%s matmul peak not measured: %s", name, e)
    return peaks


def _machine(opts: InferBenchOptions, load_before: tuple[float, ...], other_pct: float | None) -> dict[str, Any]:
    import onnxruntime

    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "ort_threads": opts.threads, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(), "load_avg_before": [round(v, 2) for v in load_before],
            "load_avg_after": [round(v, 2) for v in os.getloadavg()], "other_processes_cpu_pct": other_pct,
            "bundles": [str(b) for b in opts.bundles]}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_table(report: Report) -> str:
    """A Markdown table: one row per backend and batch size."""
    head = ("| backend | batch | median ms/step | p90 ms | frames/s | vs torch | GFLOP/s | % fp32 peak | % bf16 peak |\n"
            "|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in report.results:
        speed = f"{r.speedup_vs_torch:.2f}x" if r.speedup_vs_torch else "-"
        fp32 = f"{r.pct_fp32_peak:.0f}%" if r.pct_fp32_peak is not None else "-"
        bf16 = f"{r.pct_bf16_peak:.0f}%" if r.pct_bf16_peak is not None else "-"
        rows.append(f"| {r.backend} | {r.batch} | {r.median_ms:.2f} | {r.p90_ms:.2f} | {r.frames_per_s:.0f} | {speed} "
                    f"| {r.gflops:.0f} | {fp32} | {bf16} |")
    return "\n".join([head, *rows])


def format_summary(report: Report) -> str:
    """The lines above the table: peaks, FLOPs, load; and the skipped backends below it."""
    p, f, m = report.peak_gflops, report.flops_per_frame, report.machine
    peaks = ", ".join(f"{k} {v:.0f}" for k, v in p.items()) or "not measured"
    check = "equal" if f["onnx"] == f["torch"] else f"torch counts {f['torch'] / 1e6:.1f} M"
    return (f"{m['cpu']}, {m['cores']} cores, torch {m['torch_threads']} threads; matmul peak GFLOP/s (2048^3): {peaks}\n"
            f"FLOPs per frame (one step, counted on the ONNX step graph): {f['onnx'] / 1e6:.1f} M ({check} by "
            f"FlopCounterMode); load average {m['load_avg_before'][0]:.2f} -> {m['load_avg_after'][0]:.2f}, "
            f"other processes {m['other_processes_cpu_pct']}% CPU during the run")
