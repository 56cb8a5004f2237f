"""CPU-specific speed: allocator tuning (opt-in, process-wide, glibc only) and compiled kernels.

Allocator: PyTorch does not cache CPU memory: every fresh tensor is a `malloc`, and glibc hands blocks above
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

import contextlib
import contextvars
import ctypes
import ctypes.util
import sys
import warnings

import torch

from augpipe import kernels

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


# --- compiled CPU kernels ---------------------------------------------------------------------
# On the CPU, eager elementwise chains pay one memory pass per op. Hue is the one long chain in a
# policy (~35 passes over a plane); inductor fuses it into one C++ loop: 3.4-4x faster at every
# size (0.41 -> 0.11 ms per 224 px image, 2 cores, bit-identical output). Compiling costs 3-7 s
# once per process (less with inductor's on-disk cache), which only pays back on large views
# (~10k images at 224 px, ~1M at 32 px), so policies use it from COMPILED_HUE_MIN_PIXELS up.
COMPILED_HUE_MIN_PIXELS = 128 * 128
_use_compiled = contextvars.ContextVar("augpipe_compiled_cpu_kernels", default=False)
_compiled_hue = None
_compile_failed = False


@contextlib.contextmanager
def compiled_cpu_kernels(enabled: bool = True):
    """Within the block, `hue_kernel` may hand out the compiled hue (the policy's CPU path)."""
    token = _use_compiled.set(enabled)
    try:
        yield
    finally:
        _use_compiled.reset(token)


def hue_kernel(images: torch.Tensor):
    """The hue kernel for `images`: inductor's fused loop inside `compiled_cpu_kernels()` for CPU
    planes of at least COMPILED_HUE_MIN_PIXELS, else the eager `kernels.hue` (also when this
    machine cannot compile: no C++ compiler, where one failure switches it off with a warning)."""
    global _compiled_hue
    if (not _use_compiled.get() or _compile_failed or images.device.type != "cpu"
            or images.shape[-2] * images.shape[-1] < COMPILED_HUE_MIN_PIXELS or torch.compiler.is_compiling()):
        return kernels.hue
    if _compiled_hue is None:
        # dynamic: one graph for every batch and view size (chunks and subsets vary in rows)
        _compiled_hue = torch.compile(kernels.hue, dynamic=True)
    return _hue_or_fallback


def _hue_or_fallback(images: torch.Tensor, shift: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    global _compile_failed
    try:
        out = _compiled_hue(images, shift.clone())  # a view of the factors: guard on it alone
    except Exception as err:  # noqa: BLE001 - inductor raises many types; eager is always correct
        _compile_failed = True
        warnings.warn(f"augpipe: compiling the CPU hue kernel failed ({type(err).__name__}: {err}); "
                      f"using the eager kernel", RuntimeWarning, stacklevel=2)
        return kernels.hue(images, shift, inplace=inplace)
    return images.copy_(out) if inplace else out
