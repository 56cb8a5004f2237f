"""CPU-specific speed: allocator tuning (opt-in, process-wide, glibc only), a fixed thread count
for the augmentation (`intra_op_threads`) and the compiled hue.

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

import ctypes
import ctypes.util
import functools
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator

import torch

from augpipe import kernels

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


@contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` intra-op threads, then give the caller's count back (None or 0:
    leave it).

    Why a count of its own for the augmentation: a policy call is ~100-250 small ops, each a
    parallel region where every thread must arrive. When other processes share the cores (a
    laptop's browser, a neighbour's job), the OS puts one thread aside for a time slice and its
    partners wait at every region: on 2 cores beside two busy processes the demo's augmentation
    ran 20-80x slower with 2 threads. One thread has no partner to wait for. The count is fixed,
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


# On the CPU, eager elementwise chains pay one memory pass per op. Hue is the one long chain in a
# policy (~35 passes over a plane); inductor fuses it into one C++ loop: 3.4-4x faster at every
# size (0.41 -> 0.11 ms per 224 px image, 2 cores, bit-identical output). Compiling costs 3-7 s
# once per process (less with inductor's on-disk cache), which only pays back on large views
# (~10k images at 224 px, ~1M at 32 px), so policies use it from `min_pixels` (128 x 128) up.
COMPILED_HUE_MIN_PIXELS = 128 * 128


class CompiledHue:
    """The hue kernel for CPU images, handed to kernels in the `ApplyContext` (`options["hue_kernel"]`)
    and chosen per call: inductor's fused loop for planes of at least `min_pixels`, else the
    eager `kernels.hue`. One per policy: the compiled function and a compile failure (no C++
    compiler: one warning, then eager for good) belong to it, not to the process."""

    def __init__(self, enabled: bool = True, min_pixels: int | None = None, compiler=torch.compile):
        self.enabled, self.failed = enabled, False
        self.min_pixels = COMPILED_HUE_MIN_PIXELS if min_pixels is None else min_pixels
        self._compiler, self._compiled = compiler, None

    def __call__(self, images: torch.Tensor, shift: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """`kernels.hue(images, shift, inplace)`, by the kernel `for_images` picks."""
        return self.for_images(images)(images, shift, inplace=inplace)

    def for_images(self, images: torch.Tensor):
        if (not self.enabled or self.failed or images.device.type != "cpu"
                or images.shape[-2] * images.shape[-1] < self.min_pixels):
            return kernels.hue
        if self._compiled is None:
            # dynamic: one graph for every batch and view size (chunks and subsets vary in rows)
            self._compiled = self._compiler(kernels.hue, dynamic=True)
        return self._hue_or_fallback

    def _hue_or_fallback(self, images: torch.Tensor, shift: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        try:
            out = self._compiled(images, shift.clone())  # a view of the factors: guard on it alone
        except Exception as err:  # noqa: BLE001 - inductor raises many types; eager is always correct
            self.failed = True
            warnings.warn(f"augpipe: compiling the CPU hue kernel failed ({type(err).__name__}: {err}); "
                          f"using the eager kernel", RuntimeWarning, stacklevel=2)
            return kernels.hue(images, shift, inplace=inplace)
        return images.copy_(out) if inplace else out
