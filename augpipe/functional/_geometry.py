"""Geometry kernels: crops, resizes, flips, padding, affine and perspective warps, each equal to its
`torchvision.transforms.v2.functional` counterpart for the same per-sample parameters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int],
                 flip: torch.Tensor | None = None, antialias: bool = False) -> torch.Tensor:
    """Crop box `(top, left, h, w)` of each image and resize it to `size`, bilinearly.

    `antialias=True`: `F.resized_crop(..., antialias=True)` per sample (`antialiased_resized_crop`).
    Otherwise:

    Matches `F.resized_crop(img, top, left, h, w, size, antialias=False)` per sample: sample
    points are the output pixel centres mapped into the box (half-pixel convention) and clamped
    to the box's edge pixels, exactly as resizing the cropped image does. One `grid_sample` call
    for the whole batch. No antialiasing when shrinking (as `antialias=False`).
    `flip` (`[N]` bool) mirrors the selected outputs horizontally for free: their sampling grid
    is read right to left, which equals `F.horizontal_flip` of the crop exactly.
    """
    if antialias:
        return antialiased_resized_crop(images, boxes, size, flip)
    n, _, in_h, in_w = images.shape
    out_h, out_w = size
    # the grid in float64 (a few [N, side] vectors: free), cast once: in float32 the sampling
    # points drift up to 1.5e-5 from F.resized_crop's at 224 px; in float64 they agree to 1e-14
    boxes = boxes.to(device=images.device, dtype=torch.float64)
    top, left, bh, bw = boxes.unbind(1)

    def axis(start, length, out_len, in_len):
        centres = (torch.arange(out_len, device=images.device, dtype=torch.float64) + 0.5)
        coords = start[:, None] + centres[None, :] * (length / out_len)[:, None] - 0.5
        coords = torch.minimum(torch.maximum(coords, start[:, None]),
                               (start + length - 1)[:, None])
        # align_corners=True: -1 and +1 are the centres of the first and last pixel.
        return coords * (2.0 / max(in_len - 1, 1)) - 1.0

    gx = axis(left, bw, out_w, in_w)  # [N, out_w]
    if flip is not None:
        gx = torch.where(flip[:, None], gx.flip(1), gx)
    gy = axis(top, bh, out_h, in_h)   # [N, out_h]
    # two [N, H, W] planes as a permuted view, as in `affine`: no copy with an inner size of 2
    planes = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=1).to(images.dtype)
    return F.grid_sample(images, planes.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def antialias_weights(start: torch.Tensor, length: torch.Tensor, out_len: int, in_len: int) -> torch.Tensor:
    """`[N, out_len, in_len]`: the weight of each input pixel in each output pixel when the span
    `[start, start + length)` of an axis (per sample) is resized to `out_len` with antialiasing.

    torchvision's (PyTorch's `interpolate(mode="bilinear", antialias=True)`, after PIL): output
    pixel `i` is centred at `start + scale * (i + 0.5)` with `scale = length / out_len`; the
    triangle filter is widened by the scale when shrinking (support `max(scale, 1)`), cut to the
    window `[floor(centre - support + 0.5), floor(centre + support + 0.5))` inside the span, and
    normalised to sum 1. Every sample gets its own filter width; the shape is fixed.
    """
    device = start.device
    scale = (length / out_len)[:, None, None]                                  # [N, 1, 1]
    support = scale.clamp(min=1.0)
    centre = scale * (torch.arange(out_len, device=device, dtype=start.dtype)[None, :, None] + 0.5)
    j = torch.arange(in_len, device=device, dtype=start.dtype)[None, None, :] - start[:, None, None]  # span coords
    window = (j >= (centre - support + 0.5).floor().clamp(min=0.0)) & (
        j < torch.minimum((centre + support + 0.5).floor(), length[:, None, None]))
    weights = torch.where(window, (1.0 - ((j + 0.5 - centre) / support).abs()).clamp(min=0.0), 0.0)
    return weights / weights.sum(dim=2, keepdim=True).clamp(min=torch.finfo(weights.dtype).tiny)


def antialiased_resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int],
                             flip: torch.Tensor | None = None) -> torch.Tensor:
    """`F.resized_crop(img, top, left, h, w, size, antialias=True)` per sample: the crop and the
    antialiased resize as two batched matrix products with per-sample weights
    (`antialias_weights`, rows outside the box weigh 0), fixed shapes, no host read. `flip`
    mirrors the selected outputs (the column weights read right to left)."""
    _, _, in_h, in_w = images.shape
    out_h, out_w = size
    top, left, bh, bw = boxes.to(device=images.device, dtype=torch.float64).unbind(1)
    rows = antialias_weights(top, bh, out_h, in_h).to(images.dtype)   # [N, out_h, H]
    cols = antialias_weights(left, bw, out_w, in_w)                    # [N, out_w, W]
    if flip is not None:
        cols = torch.where(flip[:, None, None], cols.flip(1), cols)
    cols = cols.to(images.dtype)
    return rows[:, None] @ (images @ cols.transpose(1, 2)[:, None])  # [N, C, out_h, out_w]


def hflip(images: torch.Tensor) -> torch.Tensor:
    """`F.horizontal_flip`."""
    return images.flip(-1)


def vflip(images: torch.Tensor) -> torch.Tensor:
    """`F.vertical_flip`."""
    return images.flip(-2)


PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def _pad_index(size: int, before: int, after: int, mode: str, device) -> torch.Tensor:
    """Source index of every padded position along one axis (`edge`, `reflect`, `symmetric`)."""
    i = torch.arange(-before, size + after, device=device)
    if mode == "edge":
        return i.clamp(0, size - 1)
    period = 2 * size - (2 if mode == "reflect" else 0)
    i = i.remainder(period) if period > 0 else torch.zeros_like(i)
    last = size - 1 if mode == "reflect" else size
    return torch.where(i > size - 1, 2 * last - i - (0 if mode == "reflect" else 1), i)


def pad(images: torch.Tensor, padding: tuple[int, int, int, int], mode: str = "constant",
        fill: float = 0.0) -> torch.Tensor:
    """`F.pad(img, [left, top, right, bottom], fill, padding_mode)` (static padding)."""
    left, top, right, bottom = padding
    if not any(padding):
        return images
    if mode == "constant":
        return F.pad(images, (left, right, top, bottom), value=fill)
    _, _, h, w = images.shape
    if mode == "edge" or (mode == "reflect" and max(left, right) < w and max(top, bottom) < h):
        # torch's own padding kernels: the same values, several times faster than two index_selects
        return F.pad(images, (left, right, top, bottom), mode="replicate" if mode == "edge" else "reflect")
    rows = _pad_index(h, top, bottom, mode, images.device)
    cols = _pad_index(w, left, right, mode, images.device)
    return images.index_select(-2, rows).index_select(-1, cols)


def crop(images: torch.Tensor, offsets: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`F.crop(img, top, left, h, w)` with (top, left) `[N, 2]` per sample and one output size:
    one gather over the flattened pixels, fixed shapes; faster than a gather of rows, then of
    columns (benchmarks/kernel-choices.json, `crop-flat-gather`)."""
    n, c, h, w = images.shape
    out_h, out_w = size
    rows = offsets[:, 0:1] + torch.arange(out_h, device=images.device).view(1, out_h)  # [N, out_h]
    cols = offsets[:, 1:2] + torch.arange(out_w, device=images.device).view(1, out_w)
    index = (rows.view(n, out_h, 1) * w + cols.view(n, 1, out_w)).view(n, 1, out_h * out_w)
    pixels = images.reshape(n, c, h * w).gather(2, index.expand(n, c, out_h * out_w))
    return pixels.view(n, c, out_h, out_w)


def inverse_affine_matrix(angle: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, scale: torch.Tensor,
                          shear_x: torch.Tensor, shear_y: torch.Tensor, centre: tuple[float, float] = (0.0, 0.0)
                          ) -> torch.Tensor:
    """torchvision's `_get_inverse_affine_matrix` per sample: `[N, 6]` (float64, as torchvision's
    Python floats) from angles and shears in degrees, about `centre` (pixels from the image
    centre: `(-W/2, -H/2)` is the top-left corner, AutoAugment's shears)."""
    rot, sx, sy = (torch.deg2rad(v.to(torch.float64)) for v in (angle, shear_x, shear_y))
    tx, ty, scale = (v.to(torch.float64) for v in (tx, ty, scale))
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    m0, m1, m3, m4 = d / scale, -b / scale, -c / scale, a / scale
    cx, cy = centre
    return torch.stack([m0, m1, cx - m0 * (cx + tx) - m1 * (cy + ty), m3, m4, cy - m3 * (cx + tx) - m4 * (cy + ty)], dim=1)


def affine(images: torch.Tensor, matrix: torch.Tensor, mode: str = "nearest", fill: float | None = 0.0) -> torch.Tensor:
    """`F.affine` / `F.rotate` (expand=False) with one inverse matrix `[N, 6]` per sample: the
    output pixel centres mapped through the matrix (torchvision's `_affine_grid`, float32 as it
    is), `grid_sample` without corner alignment, outside points filled with `fill` (None: plain
    zero padding, torchvision's `fill=None`, which differs from 0 at bilinear borders)."""
    n, c, h, w = images.shape
    theta = matrix.to(images.dtype).view(n, 2, 3)
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=images.device, dtype=images.dtype)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=images.device, dtype=images.dtype)
    columns = theta.transpose(1, 2)  # [N, 3, 2], divided by the half sizes (Python numbers: no copy)
    r = torch.stack([columns[..., 0] / (0.5 * w), columns[..., 1] / (0.5 * h)], dim=-1)
    # torchvision's `base_grid.bmm(theta)` as x * row0 + y * row1 + row2, broadcast: the same
    # float32 values (tested against F.affine). Built as two [N, H, W] planes and handed to
    # grid_sample as a permuted view: sums whose inner size is W vectorise, sums whose inner
    # size is 2 (an [N, H, W, 2] grid) do not, and a bmm was slower still
    # (benchmarks/kernel-choices.json, `affine-grid-planes`)
    planes = (xs.view(1, 1, 1, w) * r[:, 0].view(n, 2, 1, 1) + ys.view(1, 1, h, 1) * r[:, 1].view(n, 2, 1, 1)) \
        + r[:, 2].view(n, 2, 1, 1)
    return _grid_sample_filled(images, planes.permute(0, 2, 3, 1), mode, fill)


def perspective(images: torch.Tensor, coeffs: torch.Tensor, mode: str = "bilinear",
                fill: float | None = 0.0) -> torch.Tensor:
    """`F.perspective` with coefficients `[N, 8]` per sample (output pixel (x, y) reads input
    ((a x + b y + c) / (g x + h y + 1), (d x + e y + f) / (g x + h y + 1)), pixel centres at
    +0.5): torchvision's `_perspective_grid` as batched matrix products in the image dtype, then
    the same filled `grid_sample` as `affine`."""
    n, c, h, w = images.shape
    k = coeffs.to(images.dtype)
    xs = torch.linspace(0.5, w - 0.5, steps=w, device=images.device, dtype=images.dtype)
    ys = torch.linspace(0.5, h - 0.5, steps=h, device=images.device, dtype=images.dtype)
    base = torch.stack(torch.broadcast_tensors(xs.view(1, w), ys.view(h, 1), torch.ones(1, 1, dtype=images.dtype,
                                                                                     device=images.device)), dim=-1)
    base = base.view(1, h * w, 3).expand(n, -1, -1)
    numerator = torch.stack([k[:, 0:3] / (0.5 * w), k[:, 3:6] / (0.5 * h)], dim=-1)  # [N, 3, 2]
    one = torch.ones_like(k[:, :1])
    denominator = torch.cat([k[:, 6:8], one], dim=1).unsqueeze(-1).expand(n, 3, 2)
    grid = base.bmm(numerator).div_(base.bmm(denominator)).sub_(1.0).view(n, h, w, 2)
    return _grid_sample_filled(images, grid, mode, fill)


def _grid_sample_filled(images: torch.Tensor, grid: torch.Tensor, mode: str, fill: float | None) -> torch.Tensor:
    """torchvision's `_apply_grid_transform`: `grid_sample` without corner alignment; points
    outside take `fill` (nearest: where the sampled mask is < 0.5; bilinear: blended by it), or
    plain zero padding for None."""
    c = images.shape[1]
    if fill is None:
        return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)
    with_mask = torch.cat([images, torch.ones_like(images[:, :1])], dim=1)
    out = F.grid_sample(with_mask, grid, mode=mode, padding_mode="zeros", align_corners=False)
    out, mask = out[:, :c], out[:, c:]
    if mode == "nearest":
        return torch.where(mask < 0.5, fill, out)
    return out.sub(fill).mul_(mask).add_(fill)
