"""Erasing: a box per sample set to a value, fixed shapes.
"""
from __future__ import annotations

import torch


def erase(images: torch.Tensor, boxes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`F.erase(img, top, left, h, w, v)` per sample: the box `[N, 4]` set to `values`
    (`[N, C, H, W]`, or anything that broadcasts to it), fixed shapes (a mask, not a slice)."""
    _, _, h, w = images.shape
    top, left, bh, bw = boxes.to(images.device).unbind(1)
    rows = torch.arange(h, device=images.device).view(1, h)
    cols = torch.arange(w, device=images.device).view(1, w)
    in_rows = (rows >= top[:, None]) & (rows < (top + bh)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + bw)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)
    return torch.where(mask, values.to(images.dtype), images)
