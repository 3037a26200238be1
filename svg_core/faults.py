"""Surviving long runs: stop cleanly on SIGINT/SIGTERM, never save non-finite weights.

A stop signal does not kill the run: the loop finishes its step, saves a checkpoint at the step
reached and returns; `svg train` then exits with 128 + the signal number (130 for SIGINT, 143 for
SIGTERM, the shell's convention), so scripts and schedulers see that the run did not finish.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import TracebackType

import torch
from torch import nn

log = logging.getLogger("svg")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """Context manager: SIGINT/SIGTERM only record a stop request (main thread only).

    Repeated signals are ignored (torchrun forwards the one it receives to every worker); use
    SIGKILL to stop at once.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum
            log.warning("%s received: saving a checkpoint after this step, then stopping",
                        signal.Signals(signum).name)

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old = {}


def all_finite(module: nn.Module) -> bool:
    """Whether every parameter is finite (one device sync)."""
    flags = [torch.isfinite(p).all() for p in module.parameters()]
    return bool(torch.stack(flags).all()) if flags else True
