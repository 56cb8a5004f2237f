"""CPU allocator tuning for batched augmentation (opt-in, process-wide, glibc only).

PyTorch does not cache CPU memory: every fresh tensor is a `malloc`, and glibc hands blocks above
its mmap threshold back to the OS on `free` (and trims the heap top), so the next tensor of that
size is fresh pages again: a page fault per 4 KiB. A batched augmentation pass makes tens of
multi-MB temporaries per call; on the 2-core CI machine the faults cost about a third of
`simclr` at 32 px (measured: 10.2k -> 16.7k img/s with the settings below, same run). Keeping
freed memory in the process (what jemalloc / tcmalloc do, and what PyTorch's CPU performance
guide recommends preloading) removes them. `tune_cpu_allocator()` does that with `mallopt`;
`make bench-aug`, `python -m augpipe.bench` and `python -m ssl_train` call it, a library user may.
The cost: memory freed by the process stays reserved by it (up to the peak it reached).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process (glibc `mallopt`); True if applied. Idempotent."""
    global _TUNED
    if _TUNED:
        return True
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
    _TUNED = bool(ok)
    return _TUNED
