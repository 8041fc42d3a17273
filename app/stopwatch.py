"""Named laps of one operation, so a slow one can say in a log line where its time went."""

from __future__ import annotations

import time


class Stopwatch:
    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append((name, now - self.last))
        self.last = now

    @property
    def total(self) -> float:
        return self.last - self.started

    def __str__(self) -> str:
        return ", ".join(f"{name} {1e3 * seconds:.0f} ms" for name, seconds in self.laps)
