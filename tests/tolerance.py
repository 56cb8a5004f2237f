"""How close two float computations of one formula must be, on every CPU.

The same formula computed by two kernels (ours and torchvision's, a batch and a subset of its
rows, eager and compiled) rounds differently, and by how much depends on the machine: PyTorch
picks AVX-512, AVX2 or scalar kernels at run time (`ATEN_CPU_CAPABILITY` chooses them), and they
vectorise and fuse in different orders. A bare `atol=1e-6` on float32 values near 1 is 8 rounding
steps: one more step on another CPU fails it. So the tolerance is counted in rounding steps of
the dtype (`eps`) at the compared values' magnitude:

- `roundings`: how many operations that round lie between the inputs and the compared values
  (16 by default: a handful of ops, each of which may round twice);
- `extent`: for resampling (affine, rotation, perspective, resized crops), the image's side in
  pixels. A sampling coordinate is computed to within `eps x side` pixels, and an interpolated
  value moves by up to the image's value range per pixel of coordinate.

A wrong formula (a flipped sign, a swapped axis, another interpolation) is off by far more than
this: 16 steps at 1.0 are 1.9e-6, at 224 px 4e-4, against differences of 1e-2 and more.
"""
from __future__ import annotations

import torch


def float_atol(dtype: torch.dtype, *, magnitude: float = 1.0, roundings: int = 16, extent: int = 1) -> float:
    """The absolute tolerance for `roundings` rounding steps of `dtype` at `magnitude`, times `extent`.

    Args:
        dtype: the floating dtype the values were computed in.
        magnitude: the largest absolute value involved (at least 1 is used: images are in [0, 1]).
        roundings: rounding steps allowed between the two computations.
        extent: 1, or the image side in pixels for resampled values.

    Returns:
        The absolute tolerance.
    """
    return roundings * torch.finfo(dtype).eps * max(1.0, magnitude) * extent


def assert_float_close(actual: torch.Tensor, expected: torch.Tensor, *, roundings: int = 16, extent: int = 1,
                       dtype: torch.dtype | None = None, msg=None) -> None:
    """`torch.testing.assert_close` with `float_atol` (no relative tolerance).

    Args:
        actual, expected: the two results (same shape).
        roundings, extent: as `float_atol`.
        dtype: the dtype they were computed in, when compared in another (float64 fingerprints
            of float32 views); by default `expected.dtype`.
        msg: passed on to `assert_close`.
    """
    magnitude = float(expected.abs().max()) if expected.numel() else 1.0
    atol = float_atol(dtype or expected.dtype, magnitude=magnitude, roundings=roundings, extent=extent)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0, msg=msg)
