"""The distributions every draw is made from: uniform, Bernoulli, normal and permutations, as
`[n, ...]` tensors from an explicit generator, on the generator's device.
"""
from __future__ import annotations

import torch


def draw(kind, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`torch.rand` or `torch.randn` draws made on the generator's device, returned on `device`.

    The one place that decides where numbers are drawn: a generator draws on its own device (CUDA
    refuses a CPU generator for a CUDA draw), so a seed gives the same parameters on that device;
    without a generator the draw is made on `device` from torch's global RNG.
    """
    source = device if generator is None else generator.device
    return kind(shape, generator=generator, device=source, dtype=dtype).to(device)


def uniform(n: int, low: float, high: float, generator: torch.Generator | None,
            device: torch.device) -> torch.Tensor:
    """`n` independent draws from U(low, high), float32."""
    return low + (high - low) * draw(torch.rand, (n,), generator, device)


def bernoulli(n: int, p: float, generator: torch.Generator | None,
              device: torch.device) -> torch.Tensor:
    """`n` independent coin flips that are True with probability `p` (bool)."""
    if p >= 1.0:
        return torch.ones(n, dtype=torch.bool, device=device)
    if p <= 0.0:
        return torch.zeros(n, dtype=torch.bool, device=device)
    return draw(torch.rand, (n,), generator, device) < p  # u in [0, 1): P(u < p) = p


def permutations(n: int, k: int, generator: torch.Generator | None,
                 device: torch.device) -> torch.Tensor:
    """`n` independent random permutations of `range(k)`, as an int64 `[n, k]` tensor."""
    return draw(torch.rand, (n, k), generator, device).argsort(dim=1)


def normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal draws of `shape` (float32), e.g. the per-pixel noise of a batch."""
    return draw(torch.randn, tuple(shape), generator, device)
