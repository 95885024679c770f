"""Seconds per stage of a run, and the progress callback every engine and product reports to."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Clock:
    """Seconds per stage, and an optional progress callback.

    The callback is called as ``progress(stage)`` when a stage ends; on long streaming runs
    its ``tick(what, n)`` method, if it has one, gets running counts (rows read, partitions
    done).
    """

    progress: Callable[..., None] | None = None
    seconds: dict = field(default_factory=dict)
    _t: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str, *, quiet: bool = False) -> None:
        """Add the time since the last lap to ``stage`` (and report it unless ``quiet``)."""
        now = time.perf_counter()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + now - self._t, 6)
        self._t = now
        if self.progress is not None and not quiet:
            self.progress(stage)

    def tick(self, what: str, n: int) -> None:
        """Report a running count to the callback's ``tick(what, n)`` method, if it has one
        (the CLI's progress line; it decides how often to redraw)."""
        tick = getattr(self.progress, "tick", None)
        if tick is not None:
            tick(what, n)
