"""What the kernels share: per-sample parameters shaped to broadcast over a batch."""
from __future__ import annotations

import torch


def per_sample(values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Shape `[N]` parameters as `[N, 1, 1, 1]` to broadcast over images."""
    return values.to(images.dtype).view(-1, 1, 1, 1)
