"""CPU-specific speed: allocator tuning (opt-in, process-wide, glibc only) and a fixed thread count
for the augmentation (`intra_op_threads`). (The policy's compiled CPU hue: `augpipe/policy/_cpu.py`.)

Allocator: PyTorch does not cache CPU memory: every fresh tensor is a `malloc`, and glibc hands blocks above
its mmap threshold back to the OS on `free` (and trims the heap top), so the next tensor of that
size is fresh pages again: a page fault per 4 KiB. A batched augmentation pass makes tens of
multi-MB temporaries per call, and the faults cost a large share of a small-image policy's time
(benchmarks/kernel-choices.json, `allocator-tuning`). Keeping
freed memory in the process (what jemalloc / tcmalloc do, and what PyTorch's CPU performance
guide recommends preloading) removes them. `tune_cpu_allocator()` does that with `mallopt`;
`make bench-aug`, `python -m augpipe.bench` and `python -m ssl_train` call it, a library user may.
The cost: memory freed by the process stays reserved by it (up to the peak it reached).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from contextlib import contextmanager
from typing import Iterator

import torch

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


@contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` intra-op threads, then give the caller's count back (None or 0:
    leave it).

    Why a count of its own for the augmentation: a policy call is ~100-250 small ops, each a
    parallel region where every thread must arrive. When other processes share the cores (a
    laptop's browser, a neighbour's job), the OS puts one thread aside for a time slice and its
    partners wait at every region, and two threads run many times slower than one
    (benchmarks/under-load.json). One thread has no partner to wait for. The count is fixed,
    never chosen by measured speed, so the views (float reductions split by thread) do not
    follow the load.
    """
    before = torch.get_num_threads()
    if not count or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache  # process-wide by nature (mallopt): applied once, the answer remembered
def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process (glibc `mallopt`); True if applied. Idempotent."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = (mallopt(_M_MMAP_THRESHOLD, 32 << 20)   # glibc's maximum: blocks below come from the heap
          and mallopt(_M_TRIM_THRESHOLD, 1 << 30)  # never trim the heap top below 1 GiB free
          and mallopt(_M_TOP_PAD, 64 << 20))       # grow the heap in 64 MiB steps
    return bool(ok)
