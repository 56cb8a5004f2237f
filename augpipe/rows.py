"""Row subsets of a batch on the CPU path (subset gating): taking some rows, putting them back,
and the size from which a Python loop of per-row copies beats one batched op.

Subset gating already reads which rows on the host (`nonzero`: free on the CPU); the per-row loops
here run on the CPU only, other devices keep one batched op.
"""
from __future__ import annotations

import torch

# The CPU path's per-row kernels (a Python loop of slice copies) pay from about 80 x 80 px: a row
# has a fixed cost. 2 cores, 2026-11-29, ms per batch. RandomCrop, rows / pad + one flat gather:
# 32 px x 512 29 / 2.4, 64 px x 256 17 / 4.6, 96 px x 128 7.6 / 5.8 (the one size where the
# threshold is not the faster side, by 2 ms), 160 px x 128 26 / 46, 224 px x 64 5.6 / 11.5.
# RandomErasing (p=0.25), boxes into a copy / mask and where: 32 px 3.5 / 1.9, 96 px 1.7 / 3.3,
# 224 px 19.1 / 23.9; in place the boxes win at every size (32 px 1.6, 224 px 0.5). Rows put back,
# a copy per row / index_copy_, ms per row: 96 px 0.008-0.010 / 0.010, 224 px 0.022-0.030 / 0.055.
ROW_LOOP_MIN_PIXELS = 80 * 80


def loops_pay(size) -> bool:
    """Whether rows of `size` (h, w) are large enough for a per-row loop to beat a batched op."""
    return size[-2] * size[-1] >= ROW_LOOP_MIN_PIXELS


def take(t: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    """`t`'s rows `idx` (all of them for None)."""
    return t if idx is None else t.index_select(0, idx)


def put(target: torch.Tensor, idx: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`target[idx] = values`, in place, returned: `index_copy_`, or from 80 x 80 px a copy per
    row, twice as fast there (measured above)."""
    if not loops_pay(target.shape) or target.device.type != "cpu":
        return target.index_copy_(0, idx, values)
    for j, i in enumerate(idx.tolist()):
        target[i].copy_(values[j])
    return target
