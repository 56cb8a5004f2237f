"""Synchronising wall-clock timers.

On CUDA, kernels run asynchronously: a plain `time.perf_counter()` around a launch measures the
launch, not the work. `SyncTimer` synchronises the device at both ends of a timed region, so the
split between phases (data / augment / model) is true. On CPU it is a plain perf_counter.
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

import torch


def sync(device: torch.device | str | None) -> None:
    """Wait for all queued work on `device` (no-op on CPU)."""
    if device is None:
        return
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SyncTimer:
    """Context-manager timer that synchronises `device` before reading the clock.

    >>> t = SyncTimer("cpu")
    >>> with t: pass
    >>> t.seconds >= 0
    True
    """

    def __init__(self, device: torch.device | str | None = "cpu"):
        self.device = torch.device(device) if device is not None else None
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> "SyncTimer":
        sync(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self._start


class TimeAccount:
    """Seconds per named phase, without a device sync per phase: `with account.phase("augment"): ...`.

    On CUDA each phase is a pair of CUDA events on the current stream, read once when `seconds`
    is asked for (one synchronisation per epoch in the training loop, not one per phase): the
    phases measure the stream's timeline, so work the GPU overlaps with loading is not counted
    twice and a phase the host waits on shows as the gap it leaves. On CPU the clock is read
    directly (no sync exists). Totals add over every interval of a name until `reset()`.
    """

    def __init__(self, device: torch.device | str | None = "cpu"):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._totals: dict[str, float] = defaultdict(float)
        self._events: list[tuple[str, object, object]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            try:
                yield
            finally:
                end.record()
                self._events.append((name, start, end))
        else:
            t0 = time.perf_counter()
            try:
                yield
            finally:
                self._totals[name] += time.perf_counter() - t0

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds per phase (on CUDA: one synchronisation, then the events are folded in)."""
        if self._events:
            torch.cuda.synchronize(self.device)
            for name, start, end in self._events:
                self._totals[name] += start.elapsed_time(end) / 1000.0
            self._events.clear()
        return dict(self._totals)

    def reset(self) -> None:
        self._totals.clear()
        self._events.clear()
