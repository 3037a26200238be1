"""Progress bars that suit both a terminal and a log file.

On a terminal: tqdm as usual. Elsewhere (CI logs, `> log.txt`, a scheduler's capture): tqdm
redraws its line with `\\r` ten times a second, which a log keeps as one huge line or a flood. There
the bar prints a plain line at most every LOG_INTERVAL_S seconds (and at the end) instead.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

LOG_INTERVAL_S = 30.0


class _LineWriter:
    """A stream for tqdm that turns each `\\r`-redraw into one plain line."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable: Any = None, *, stream: TextIO | None = None, **kwargs: Any) -> Any:
    """tqdm(iterable, **kwargs), drawn in place on a terminal and as occasional plain lines elsewhere."""
    from tqdm.auto import tqdm

    stream = stream if stream is not None else sys.stderr
    if not is_terminal(stream):
        kwargs = {**kwargs, "file": _LineWriter(stream), "mininterval": LOG_INTERVAL_S, "ascii": True, "leave": True,
                  "dynamic_ncols": False, "ncols": 100}
    else:
        kwargs = {"file": stream, **kwargs}
    return tqdm(iterable, **kwargs)
