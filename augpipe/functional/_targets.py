"""Kernels for what travels with the images: masks, boxes and keypoints, moved by each sample's
own geometry exactly as torchvision's v2 kernels move `tv_tensors.Mask`, `BoundingBoxes` and
`KeyPoints` (pure, fixed shapes, no host read).

Points are `[N, M, 2]` (x, y) in continuous pixel coordinates (pixel `i` spans `[i, i + 1]`);
boxes are XYXY `[N, M, 4]`, moved through their four corners and enveloped; masks are
`[N, K, H, W]` of any dtype, resampled with nearest.
"""
from __future__ import annotations

import torch

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def boxes_to_xyxy(boxes: torch.Tensor, fmt: str) -> torch.Tensor:
    """`[..., 4]` boxes in `fmt` (torchvision's BoundingBoxFormat names) as XYXY."""
    a, b, c, d = boxes.unbind(-1)
    if fmt == "xywh":
        return torch.stack([a, b, a + c, b + d], dim=-1)
    if fmt == "cxcywh":
        return torch.stack([a - c / 2, b - d / 2, a + c / 2, b + d / 2], dim=-1)
    return boxes


def xyxy_to_boxes(boxes: torch.Tensor, fmt: str) -> torch.Tensor:
    """XYXY `[..., 4]` boxes in `fmt`."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    if fmt == "xywh":
        return torch.stack([x1, y1, x2 - x1, y2 - y1], dim=-1)
    if fmt == "cxcywh":
        return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)
    return boxes


def box_corners(boxes: torch.Tensor) -> torch.Tensor:
    """XYXY `[N, M, 4]` -> the four corners `[N, 4 * M, 2]`."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    corners = torch.stack([torch.stack([x1, y1], -1), torch.stack([x2, y1], -1),
                           torch.stack([x1, y2], -1), torch.stack([x2, y2], -1)], dim=2)  # [N, M, 4, 2]
    return corners.flatten(1, 2)


def envelope(corners: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`[N, 4 * M, 2]` corners -> the XYXY boxes that hold them, clamped to the canvas `size` (as
    torchvision clamps boxes after every geometric op)."""
    c = corners.unflatten(1, (-1, 4))
    lo, hi = c.amin(dim=2), c.amax(dim=2)
    h, w = size
    return torch.stack([lo[..., 0].clamp(0, w), lo[..., 1].clamp(0, h), hi[..., 0].clamp(0, w),
                        hi[..., 1].clamp(0, h)], dim=-1)


def resized_crop_points(points: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`F.resized_crop` of keypoints: into box `(top, left, h, w)` coordinates, scaled to `size`."""
    top, left, bh, bw = boxes.to(points.dtype).unbind(1)
    x = (points[..., 0] - left[:, None]) * (size[1] / bw)[:, None]
    y = (points[..., 1] - top[:, None]) * (size[0] / bh)[:, None]
    return torch.stack([x, y], dim=-1)


def shift_points(points: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Points moved by `(dx, dy)` `[N]` (a crop at offsets after padding: `dx = left - x0`)."""
    return points + torch.stack([dx, dy], dim=-1).to(points.dtype)[:, None, :]


def flip_points(points: torch.Tensor, width: int | None = None, height: int | None = None) -> torch.Tensor:
    """Mirrored points: `x -> width - x` (horizontal) or `y -> height - y` (vertical); torchvision
    mirrors box edges about the image's width and keypoints about `width - 1`."""
    x, y = points.unbind(-1)
    return torch.stack([width - x if width is not None else x, height - y if height is not None else y], dim=-1)


def affine_points(points: torch.Tensor, inverse: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Points through the forward map of the inverse affine matrices `[N, 6]` (the images'
    output->input map about the centre, `inverse_affine_matrix`), on a canvas of `size`."""
    a, b, c, d, e, f = inverse.to(torch.float64).unbind(1)
    det = a * e - b * d  # the forward map: the 2x2 part inverted, its translation undone
    fa, fb, fd, fe = e / det, -b / det, -d / det, a / det
    h, w = size
    x = points[..., 0].to(torch.float64) - w / 2 - c[:, None]
    y = points[..., 1].to(torch.float64) - h / 2 - f[:, None]
    out = torch.stack([fa[:, None] * x + fb[:, None] * y + w / 2, fd[:, None] * x + fe[:, None] * y + h / 2], dim=-1)
    return out.to(points.dtype)


def resized_crop_masks(masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`F.resized_crop(mask, ..., NEAREST)` per sample: output pixel `i` reads box pixel
    `floor(i * box / out)` (interpolate's `nearest`, its float32 scale), one gather."""
    n, k, h, w = masks.shape
    out_h, out_w = size
    top, left, bh, bw = boxes.to(masks.device).unbind(1)

    def index(start, length, out_len):
        scale = length.to(torch.float32) / out_len
        steps = torch.arange(out_len, device=masks.device, dtype=torch.float32)
        src = torch.minimum((steps[None, :] * scale[:, None]).floor().long(), (length - 1)[:, None])
        return start[:, None] + src
    rows, cols = index(top, bh, out_h), index(left, bw, out_w)
    flat = (rows[:, :, None] * w + cols[:, None, :]).view(n, 1, out_h * out_w).expand(n, k, out_h * out_w)
    return masks.reshape(n, k, h * w).gather(2, flat).view(n, k, out_h, out_w)


def perspective_points(points: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Points through the forward map of the perspective coefficients `[N, 8]` (the images'
    output->input map, `F.perspective`'s), as torchvision's `perspective_keypoints` inverts them."""
    a, b, c, d, e, f, g, h = coeffs.to(torch.float64).unbind(1)
    denom = a * e - b * d
    inv = torch.stack([(e - f * h), (-b + c * h), (b * f - c * e), (-d + f * g), (a - c * g), (-a * f + c * d),
                       (-e * g + d * h), (-a * h + b * g)], dim=1) / denom[:, None]
    inv = inv.to(points.dtype)
    x, y = points[..., 0], points[..., 1]
    w = inv[:, 6:7] * x + inv[:, 7:8] * y + 1.0
    return torch.stack([(inv[:, 0:1] * x + inv[:, 1:2] * y + inv[:, 2:3]) / w,
                        (inv[:, 3:4] * x + inv[:, 4:5] * y + inv[:, 5:6]) / w], dim=-1)
