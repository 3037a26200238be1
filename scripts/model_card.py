"""Write model_card.json into an exported bundle from its run directory and an `svg eval` result.

    python scripts/model_card.py --name smmnist-1digit --run RUN --eval RUN/eval --bundle BUNDLE \
        --command "svg train ..." --command "svg export ..." --hardware "2 CPU cores"

The card holds what a user needs to trust (or reproduce) a pretrained bundle: the exact commands,
steps, training minutes, the configuration, and the evaluation next to its trivial baselines.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def _training_time(metrics: list[dict]) -> tuple[float, float]:
    """(minutes of training, median seconds per step) from a run's metrics.jsonl records."""
    seconds, per_step = 0.0, []
    for prev, rec in zip(metrics, metrics[1:], strict=False):
        dt, ds = rec["time"] - prev["time"], rec["step"] - prev["step"]
        if ds > 0 and 0 < dt < 600:  # gaps longer than 10 minutes are pauses between resumes
            seconds += dt
            per_step.append(dt / ds)
    first = metrics[0]
    seconds += first["step"] * (statistics.median(per_step) if per_step else 0.0)
    return seconds / 60, statistics.median(per_step) if per_step else float("nan")


def _metric(results: dict, name: str) -> dict:
    m, b = results["metrics"][name], results["baselines"]
    return {"best": round(m["best"]["mean"], 4), "best_ci95": round(m["best"]["ci95"], 4),
            "mean": round(m["mean"]["mean"], 4), "copy_last": round(b["copy_last"][name]["mean"], 4),
            "black": round(b["black"][name]["mean"], 4)}


def build_card(name: str, run: Path, eval_dir: Path, bundle: Path, commands: list[str], hardware: str) -> dict:
    config = json.loads((run / "config.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    results = json.loads((eval_dir / "results.json").read_text())
    minutes, sec_per_step = _training_time(metrics)
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    return {
        "name": name,
        "description": "SVG-LP trained on 1-digit Stochastic Moving MNIST (64x64, 5 -> 10 frames) on a CPU.",
        "commands": commands,
        "hardware": hardware,
        "steps": metrics[-1]["step"],
        "training_minutes": round(minutes, 1),
        "seconds_per_step": round(sec_per_step, 3),
        "final_loss": {k: round(metrics[-1][k], 5) for k in ("loss", "mse", "kld")},
        "model": config["model"],
        "train": config["train"],
        "evaluation": {
            "test_set": results.get("data", {}),
            "n_videos": results["n_videos"], "cond": results["cond"], "horizon": results["horizon"],
            "n_samples": results["options"]["n_samples_drawn"],
            "ssim": _metric(results, "ssim"), "psnr": _metric(results, "psnr"),
            "diversity": round(results["diversity"]["mean"], 6),
        },
        "bundle_bytes": size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--command", action="append", default=[])
    ap.add_argument("--hardware", default="2 CPU cores")
    a = ap.parse_args()
    card = build_card(a.name, a.run, a.eval, a.bundle, a.command, a.hardware)
    (a.bundle / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({k: card[k] for k in ("steps", "training_minutes", "evaluation")}, indent=2))


if __name__ == "__main__":
    main()
