"""pytest-benchmark: one SVG-LP DCGAN-64 training step, batched vs per-frame (authors' style), batch 16.

Not part of `make test`; run with
`python -m pytest benchmarks/test_train_step.py --benchmark-only --benchmark-group-by=param:width`.
The same comparison, as one table: `svg bench --train`.
"""

from __future__ import annotations

import pytest

from svg_bench.train import make_train_step


@pytest.mark.parametrize("width", [64, 16])
@pytest.mark.parametrize("loop,amp", [("per-frame", "none"), ("batched", "none"), ("batched", "bf16")])
def test_train_step(benchmark, width: int, loop: str, amp: str) -> None:
    step = make_train_step(width, loop, batch_size=16, amp=amp)
    benchmark.extra_info.update(width=width, loop=loop, amp=amp, batch_size=16, seq_len=15)
    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["seq_per_s"] = 16 / benchmark.stats.stats.median
