"""Per-sample random parameters, drawn as `[N, ...]` tensors from an explicit generator.

Nothing here touches pixels: kernels (`augpipe.kernels`) are pure functions of images and the
parameters drawn here. Every function draws on the generator's device (so the same seed gives the
same parameters on that device) and returns tensors on `device`.

Distributions follow torchvision.transforms.v2 so that one policy means the same thing everywhere:
- crop boxes: `RandomResizedCrop.get_params` (10 tries of area ~ U(scale), log-ratio ~ U(log ratio),
  first fitting box wins, else the central fallback), vectorised over the batch;
- jitter factors: brightness/contrast/saturation ~ U(max(0, 1-s), 1+s), hue ~ U(-h, h), and a random
  order of the four per sample (torchvision draws one order per call; we draw one per sample).
"""
from __future__ import annotations

import math

import torch


def _gen_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def uniform(n: int, low: float, high: float, generator: torch.Generator | None,
            device: torch.device) -> torch.Tensor:
    """`n` independent draws from U(low, high), float32."""
    gd = _gen_device(generator, device)
    u = torch.rand(n, generator=generator, device=gd)
    return (low + (high - low) * u).to(device)


def bernoulli(n: int, p: float, generator: torch.Generator | None,
              device: torch.device) -> torch.Tensor:
    """`n` independent coin flips that are True with probability `p` (bool)."""
    gd = _gen_device(generator, device)
    if p >= 1.0:
        return torch.ones(n, dtype=torch.bool, device=device)
    if p <= 0.0:
        return torch.zeros(n, dtype=torch.bool, device=device)
    return (torch.rand(n, generator=generator, device=gd) < p).to(device)


def permutations(n: int, k: int, generator: torch.Generator | None,
                 device: torch.device) -> torch.Tensor:
    """`n` independent random permutations of `range(k)`, as an int64 `[n, k]` tensor."""
    gd = _gen_device(generator, device)
    keys = torch.rand(n, k, generator=generator, device=gd)
    return keys.argsort(dim=1).to(device)


def normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal draws of `shape` (float32), e.g. the per-pixel noise of a batch."""
    gd = _gen_device(generator, device)
    return torch.randn(shape, generator=generator, device=gd).to(device)


def resized_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                       ratio: tuple[float, float], generator: torch.Generator | None,
                       device: torch.device, tries: int = 10) -> torch.Tensor:
    """Integer crop boxes `[n, 4]` as (top, left, height, width), torchvision's RRC distribution.

    For each sample, `tries` candidate boxes are drawn at once; the first that fits the image is
    kept (as torchvision's loop does); samples with no fitting candidate get the central crop
    clamped to `ratio` (torchvision's fallback).
    """
    gd = _gen_device(generator, device)
    area = float(height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    u = torch.rand(n, tries, 2, generator=generator, device=gd, dtype=torch.float64)
    target_area = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(dim=1)  # index of the first fitting try (0 if none)
    any_fit = fits.any(dim=1)
    w = w.gather(1, first[:, None])[:, 0]
    h = h.gather(1, first[:, None])[:, 0]

    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    w = torch.where(any_fit, w, torch.full_like(w, fw))
    h = torch.where(any_fit, h, torch.full_like(h, fh))

    pos = torch.rand(n, 2, generator=generator, device=gd, dtype=torch.float64)
    top = torch.floor(pos[:, 0] * (height - h + 1)).clamp(max=height - h)
    left = torch.floor(pos[:, 1] * (width - w + 1)).clamp(max=width - w)
    top = torch.where(any_fit, top, torch.div(height - h, 2, rounding_mode="floor"))
    left = torch.where(any_fit, left, torch.div(width - w, 2, rounding_mode="floor"))
    return torch.stack([top, left, h, w], dim=1).to(device=device, dtype=torch.int64)


def full_boxes(n: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """The whole image as a crop box, for every sample: plain resize through the crop kernel.

    Built by fills on the device, not from a host list (a host-to-device copy would synchronise).
    """
    boxes = torch.zeros(n, 4, dtype=torch.int64, device=device)
    boxes[:, 2] = height
    boxes[:, 3] = width
    return boxes
