"""The CPU path's compiled hue: inductor's fused loop for large planes, eager below, one per policy."""
from __future__ import annotations

import warnings

import torch

from augpipe import functional

# On the CPU, eager elementwise chains pay one memory pass per op. Hue is the one long chain in a
# policy (~35 passes over a plane); inductor fuses it into one C++ loop, faster at every size with
# bit-identical output. Compiling costs seconds once per process (less with inductor's on-disk
# cache), which pays back only on large views, so policies use it from `min_pixels` (128 x 128)
# up (benchmarks/kernel-choices.json, `compiled-hue`).
COMPILED_HUE_MIN_PIXELS = 128 * 128


class CompiledHue:
    """The hue kernel for CPU images, handed to kernels in the `ApplyContext` (`options["hue_kernel"]`)
    and chosen per call: inductor's fused loop for planes of at least `min_pixels`, else the
    eager `functional.hue`. One per policy: the compiled function and a compile failure (no C++
    compiler: one warning, then eager for good) belong to it, not to the process."""

    def __init__(self, enabled: bool = True, min_pixels: int | None = None, compiler=torch.compile):
        self.enabled, self.failed = enabled, False
        self.min_pixels = COMPILED_HUE_MIN_PIXELS if min_pixels is None else min_pixels
        self._compiler, self._compiled = compiler, None

    def __call__(self, images: torch.Tensor, shift: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """`functional.hue(images, shift, inplace)`, by the kernel `for_images` picks."""
        return self.for_images(images)(images, shift, inplace=inplace)

    def for_images(self, images: torch.Tensor):
        if (not self.enabled or self.failed or images.device.type != "cpu"
                or images.shape[-2] * images.shape[-1] < self.min_pixels):
            return functional.hue
        if self._compiled is None:
            # dynamic: one graph for every batch and view size (chunks and subsets vary in rows)
            self._compiled = self._compiler(functional.hue, dynamic=True)
        return self._hue_or_fallback

    def _hue_or_fallback(self, images: torch.Tensor, shift: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        try:
            out = self._compiled(images, shift.clone())  # a view of the factors: guard on it alone
        except Exception as err:  # inductor raises many types; eager is always correct
            self.failed = True
            warnings.warn(f"augpipe: compiling the CPU hue kernel failed ({type(err).__name__}: {err}); "
                          f"using the eager kernel", RuntimeWarning, stacklevel=2)
            return functional.hue(images, shift, inplace=inplace)
        return images.copy_(out) if inplace else out
