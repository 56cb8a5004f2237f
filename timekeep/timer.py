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
    """Accumulates seconds per named phase: `with account.phase("augment"): ...`."""

    def __init__(self, device: torch.device | str | None = "cpu"):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        timer = SyncTimer(self.device)
        with timer:
            yield
        self.seconds[name] += timer.seconds


class IntervalLog:
    """Per-name time totals recorded without a device sync per interval.

    On CUDA each interval is a pair of CUDA events and the elapsed times are read once, in
    `totals()` (one synchronisation for a whole pipeline); on CPU the clock is read directly.
    Used for the opt-in per-op timing of augmentation policies.
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self._cpu: dict[str, float] = defaultdict(float)
        self._events: list[tuple[str, object, object]] = []

    @contextmanager
    def interval(self, name: str) -> Iterator[None]:
        if self.device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._events.append((name, start, end))
        else:
            t0 = time.perf_counter()
            yield
            self._cpu[name] += time.perf_counter() - t0

    def totals(self) -> dict[str, float]:
        """Seconds per name (synchronises once on CUDA)."""
        if self._events:
            torch.cuda.synchronize(self.device)
            for name, start, end in self._events:
                self._cpu[name] += start.elapsed_time(end) / 1000.0
            self._events.clear()
        return dict(self._cpu)

    def reset(self) -> None:
        self._cpu.clear()
        self._events.clear()
