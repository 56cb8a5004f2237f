"""The CPU path's row loops: kernels that read per-sample parameters on the host and run a Python
loop of per-row copies, and the row subsets of subset gating (taking some rows, putting them
back), with the one rule for when such a loop beats a batched op (`loops_pay`).

**These read tensors back to the host** (`tolist`, `nonzero`): only subset gating on the CPU
calls them, where that read is free; the GPU path never does (blend gating: batched kernels).
"""
from __future__ import annotations

import torch

# The CPU path's per-row kernels (a Python loop of slice copies) pay from about 80 x 80 px: a row
# has a fixed cost, which small images cannot amortise against one flat gather or a mask. The
# crop, erasing and put-back figures behind the threshold: benchmarks/kernel-choices.json,
# `row-loops`.
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


def erase_rows(images: torch.Tensor, boxes: torch.Tensor, values: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """`erase`, box by box: each row's box set by one slice assignment, rows without a box
    untouched. Reads the boxes on the host: the CPU path (subset gating), where a batch-sized mask
    and `where` cost a full pass for boxes that cover a fraction of a few rows."""
    out = images if inplace else images.clone()
    values = values.to(images.dtype)
    for i, (top, left, bh, bw) in enumerate(boxes.tolist()):
        if bh > 0 and bw > 0:
            value = values[i if values.shape[0] > 1 else 0]
            if value.shape[-2:] != (1, 1):  # per-pixel values: the box's own pixels
                value = value[:, top:top + bh, left:left + bw]
            out[i, :, top:top + bh, left:left + bw] = value
    return out


def crop_rows(images: torch.Tensor, offsets: torch.Tensor, size: tuple[int, int],
              padding: tuple[int, int, int, int] = (0, 0, 0, 0), fill: float = 0.0) -> torch.Tensor:
    """`crop(pad(images, padding, "constant", fill), offsets, size)` row by row, without making the
    padded batch: each row is `fill` where its window leaves the image and one strided copy of the
    image where it overlaps. Reads the offsets on the host: the CPU path (subset gating), where
    that is free and a copy per row is several times faster than two gathers over the batch."""
    n, c, h, w = images.shape
    out_h, out_w = size
    left, top = padding[0], padding[1]
    out = images.new_empty((n, c, out_h, out_w))
    for i, (y, x) in enumerate(offsets.tolist()):
        y0, x0 = y - top, x - left  # the window's corner in image coordinates
        # the overlap, in output coordinates (empty when the window misses the image)
        r0, r1 = min(max(0, -y0), out_h), max(min(out_h, h - y0), 0)
        c0, c1 = min(max(0, -x0), out_w), max(min(out_w, w - x0), 0)
        if r0 >= r1 or c0 >= c1:
            out[i].fill_(fill)
            continue
        out[i, :, r0:r1, c0:c1] = images[i, :, y0 + r0:y0 + r1, x0 + c0:x0 + c1]
        for strip in (out[i, :, :r0], out[i, :, r1:], out[i, :, r0:r1, :c0], out[i, :, r0:r1, c1:]):
            if strip.numel():  # only the border outside the overlap is fill: one pass per pixel
                strip.fill_(fill)
    return out
