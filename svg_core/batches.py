"""What a training step sees, as pure functions of (seed, step): its dataset items and its noise.

The global batch of step s is always dataset items s*B .. s*B+B-1 and its posterior noise a pure
function of (seed, s); process r of N takes the r-th contiguous slice of B/N items. So the global
batch does not depend on N, and a run resumed (with any number of processes) continues on exactly
the data and noise it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class StepBatches:
    """Batch sampler: this rank's item indices of steps start, start+1, ... (never ends)."""

    def __init__(self, start_step: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start_step, self.batch_size = start_step, batch_size
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        per_rank, step = self.batch_size // self.world_size, self.start_step
        while True:
            first = step * self.batch_size + self.rank * per_rank
            yield list(range(first, first + per_rank))
            step += 1


def step_noise(seed: int, step: int, batch_size: int, n_steps: int, z_dim: int) -> torch.Tensor:
    """Posterior noise of the whole global batch of `step`, shape = (B, n_steps, z_dim)."""
    key = int(np.random.SeedSequence([seed, step, 0x5E]).generate_state(1, np.uint64)[0])
    return torch.randn(batch_size, n_steps, z_dim, generator=torch.Generator().manual_seed(key))
