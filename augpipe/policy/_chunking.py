"""The CPU path: a group's rows in cache-sized chunks, with torch's intra-op thread count chosen
by measured speed (`ThreadChooser`), into an output batch reused once nobody holds its views
(`OutputBuffers`).

Several elementwise passes over a 38 MB batch (64 x 224 px) are bound by memory bandwidth, the
same passes over a 16 MB chunk less so: 16 MB was the fastest chunk size measured
(benchmarks/kernel-choices.json, `chunk-size`).
Parameters are still drawn for the whole batch first, so chunking changes no sampled value. On
CUDA and under blend gating the whole group is one chunk (fewer, larger kernels).
"""
from __future__ import annotations

import time
from typing import Callable

import torch

CPU_CHUNK_BYTES = 16 << 20


def chunk_rows(images: torch.Tensor) -> int:
    """Rows per chunk: as many float32 rows as fit `CPU_CHUNK_BYTES` on the CPU, all of them elsewhere."""
    if images.device.type != "cpu":
        return 1 << 62
    return max(1, CPU_CHUNK_BYTES // (4 * images[0].numel()))


def run_in_chunks(run: Callable, images: torch.Tensor, params: list[dict[str, torch.Tensor]], count: int,
                  out: torch.Tensor, threads: "ThreadChooser | None") -> torch.Tensor:
    """`out[rows] = run(images[chunk], params[rows])` for each of the `count` views' rows, chunk by
    chunk (never across views); `threads` picks and learns the thread count."""
    n = images.shape[0]
    rows = chunk_rows(images)
    chosen = threads.choose() if threads else None
    t0 = time.perf_counter()
    for k in range(count):
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            sl = slice(k * n + start, k * n + stop)
            out[sl] = run(images[start:stop], [{key: t[sl] for key, t in p.items()} for p in params])
    if threads:
        threads.record(chosen, n * count / max(time.perf_counter() - t0, 1e-9))
    return out


class ThreadChooser:
    """Picks torch's intra-op thread count for augpipe's CPU path: all threads, or one.

    A policy call is ~100-250 small ops, each a parallel region where the threads meet. On quiet
    cores all threads are fastest; when other processes share the cores (loader workers, other
    jobs), a thread the OS puts aside makes its partner wait at every region, and one thread is
    faster (benchmarks/kernel-choices.json, `threads-under-load`). So the chooser keeps a moving average of rows/s per setting,
    uses the faster, and retries the other after `explore_every` calls, twice as long after each
    try that loses (up to `max_interval`): it follows the load as it comes and goes. It sets the
    process-wide count and leaves it (switching back and forth every call is itself slow under
    load: 1 thread with a switch per call fell to 5.7k); the most it sets is what torch had when
    the chooser first ran. The first call at each setting is a warm-up and not recorded: it
    carries one-off costs (compiling the CPU hue for that thread count, growing the heap) that
    made one slow first call pin the wrong setting for good. `cpu_threads="keep"` turns it off.
    """

    def __init__(self, explore_every: int = 16, smoothing: float = 0.5, max_interval: int = 256):
        self.explore_every, self.smoothing, self.max_interval = explore_every, smoothing, max_interval
        self.rate: dict[int, float] = {}
        self.calls, self.most = 0, 0
        self.interval, self.next_explore = explore_every, explore_every
        self.exploring = False
        self.warmed: set[int] = set()

    def choose(self) -> int:
        """The thread count for this call, set in torch if it differs."""
        self.most = max(self.most, torch.get_num_threads())
        options = [self.most, 1] if self.most > 1 else [1]
        self.calls += 1
        untried = [t for t in options if t not in self.rate]
        self.exploring = False
        if untried:
            threads = untried[0]
        else:
            threads = self.best(options)
            if len(options) > 1 and self.calls >= self.next_explore:
                threads, self.exploring = next(t for t in options if t != threads), True
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return threads

    def best(self, options: list[int]) -> int:
        return max(options, key=lambda t: self.rate[t])

    def record(self, threads: int, rows_per_s: float) -> None:
        if threads not in self.warmed:
            self.warmed.add(threads)
            return
        old = self.rate.get(threads)
        self.rate[threads] = rows_per_s if old is None else old + self.smoothing * (rows_per_s - old)
        if self.exploring:  # a try of the other setting: back off while it keeps losing
            lost = self.best(list(self.rate)) != threads
            self.interval = min(2 * self.interval, self.max_interval) if lost else self.explore_every
            self.next_explore = self.calls + self.interval


def _storage_users(tensor: torch.Tensor) -> int | None:
    """How many tensors share `tensor`'s memory (torch's own count; None where torch lacks it)."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    return None if count is None else count(tensor.untyped_storage()._cdata)


class OutputBuffers:
    """The CPU output batches of a policy's view groups, kept after a call and reused by a later
    call once no view of them is held any more (torch counts the tensors sharing their memory).

    Why: glibc maps every block above 32 MB afresh and returns it on free, so a new 224 px output
    batch (38 MB a view at 64 images) is a page fault per 4 KiB on first write, an order of
    magnitude slower than writing a reused one; transparent huge pages (torch's
    `THP_MEM_ALLOC_ENABLE`) made it slower still (benchmarks/kernel-choices.json, `batch-reuse`). A view still held (kept in a list,
    saved by autograd for backward) keeps its batch from reuse: the next call allocates another.
    The cost: the policy keeps up to `most` batches (its last call's) between calls.
    """

    def __init__(self, most: int = 4):
        self.most = most
        self._kept: list[tuple[tuple, torch.Tensor, int]] = []  # (key, batch, its count when free)

    def get(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
            memory_format: torch.memory_format) -> torch.Tensor:
        key = (shape, dtype, device, memory_format)
        for i, (kept_key, batch, free) in enumerate(self._kept):
            if kept_key == key and _storage_users(batch) == free:  # every view handed out is gone
                self._kept.append(self._kept.pop(i))  # most recently used last
                return batch
        out = torch.empty(shape, dtype=dtype, device=device, memory_format=memory_format)
        users = _storage_users(out)
        if users is not None and device.type == "cpu":  # CUDA's caching allocator reuses memory itself
            self._kept = (self._kept + [(key, out, users)])[-self.most:]
        return out
