"""`svg control`: plan with an action-conditioned bundle in closed loop on a simulated robot (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from svg_cli.app import app
from svg_cli.common import fail_on_error


@app.command()
def control(
    bundle: Annotated[str, typer.Argument(help="Action-conditioned bundle directory (trained on `svg data pusht` "
                                          "episodes) or pretrained:NAME.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for results.json and one GIF per episode.")],
    env: Annotated[str, typer.Option(help="Simulator: pusht (gym-pusht, `pip install \"svg-video[sim]\"`).")] = "pusht",
    task: Annotated[str, typer.Option(help="reach (agent to a goal position) or push (T block to its pose).")] = "reach",
    episodes: Annotated[int, typer.Option(help="Episodes (each also run with random and do-nothing actions).")] = 10,
    max_steps: Annotated[int, typer.Option(help="Control steps per episode.")] = 50,
    planner: Annotated[str, typer.Option(help="mppi or cem.")] = "mppi",
    sequences: Annotated[int, typer.Option(help="Candidate action sequences per planning iteration.")] = 100,
    horizon: Annotated[int, typer.Option(help="Planning horizon (steps).")] = 5,
    samples: Annotated[int, typer.Option(help="Sampled futures per candidate sequence.")] = 1,
    iterations: Annotated[int | None, typer.Option(help="Optimiser iterations (default: MPPI 1, CEM 3).")] = None,
    noise: Annotated[float, typer.Option(help="Initial std of the candidates, fraction of the action range.")] = 0.1,
    cost: Annotated[str, typer.Option(help="pixels (blurred distance to the goal image) or agent (distance of "
                                      "the agent seen in the predicted frames to the goal image's).")] = "pixels",
    seed: Annotated[int, typer.Option(help="Seed of the episodes and the planner.")] = 0,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="Also run random and do-nothing "
                                            "actions on the same episodes.")] = True,
    threads: Annotated[int | None, typer.Option(help="onnxruntime threads (default: one per core).")] = None,
) -> None:
    """Run a planner (MPPI or CEM over predicted futures) in the Push-T simulator; report success rates.

    Writes results.json (per episode and per policy: success, final distance, planning ms) and one
    GIF per episode: the real frame, the goal image and the chosen plan's predicted frames.
    """
    with fail_on_error():
        from svg_runtime.control import ControlOptions, run_control
        from svg_runtime.errors import SVGRuntimeError

        if env != "pusht":
            raise SVGRuntimeError(f"unknown --env {env!r}: the available simulator is pusht")
        opts = ControlOptions(bundle=bundle, out=out, task=task, episodes=episodes, max_steps=max_steps,
                              planner=planner, n_sequences=sequences, horizon=horizon, n_samples=samples,
                              iterations=iterations, noise_std=noise, cost=cost, seed=seed, baselines=baselines,
                              threads=threads)
        results = run_control(opts)
        for policy, s in results["summary"].items():
            ms = f", planning {s['plan_ms_mean']:.0f} ms per step (p95 {s['plan_ms_p95']:.0f})" if "plan_ms_mean" in s else ""
            typer.echo(f"{policy:8s} success {100 * s['success_rate']:5.1f}% of {s['episodes']}, mean final distance "
                       f"{s['mean_final_distance']:.1f} (start {s['mean_start_distance']:.1f}){ms}")
        typer.echo(f"wrote {out / 'results.json'}")
