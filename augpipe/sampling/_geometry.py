"""Per-op geometric draws, as torchvision.transforms.v2 makes them, vectorised over the batch:
crop boxes (RandomResizedCrop's ten tries, erasing's), crop offsets, affine and perspective parameters.
"""
from __future__ import annotations

import math

import torch

from augpipe.sampling._distributions import draw


def fallback_box(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """torchvision's RRC fallback when no try fits: the central crop, clamped to the ratio range,
    as (top, left, height, width)."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resized_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                       ratio: tuple[float, float], generator: torch.Generator | None,
                       device: torch.device, tries: int = 10) -> torch.Tensor:
    """Integer crop boxes `[n, 4]` as (top, left, height, width), torchvision's RRC distribution.

    For each sample, `tries` candidate boxes are drawn at once; the first that fits the image is
    kept (as torchvision's loop does); samples with no fitting candidate get `fallback_box`.
    The draws, in order: `[n, tries, 2]` uniforms (area, log-ratio), then `[n, 2]` (top, left),
    all float64 (the order a seed's boxes depend on; the replay test in tests/augpipe/sampling/test_sampling.py pins it).
    """
    area, aspect = _tries(n, height * width, scale, ratio, tries, generator, device)
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    (h, w), any_fit = _first_fitting((h, w), (w > 0) & (w <= width) & (h > 0) & (h <= height))
    top, left = _positions(n, height - h + 1, width - w + 1, generator, device)
    # the fallback's numbers are Python scalars filled in on the device (a host tensor would be a copy)
    box = [torch.where(any_fit, drawn, fixed) for drawn, fixed in
           zip((top, left, h, w), fallback_box(height, width, ratio))]
    return torch.stack(box, dim=1).to(torch.int64)


def _tries(n: int, area: float, scale, ratio, tries: int, generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """`[n, tries]` candidate areas ~ U(scale) * area and aspects with log ~ U(log ratio): one
    `[n, tries, 2]` float64 draw (RandomResizedCrop's and RandomErasing's candidates)."""
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    u = draw(torch.rand, (n, tries, 2), generator, device, torch.float64)
    return area * (scale[0] + (scale[1] - scale[0]) * u[..., 0]), torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])


def _first_fitting(values: tuple[torch.Tensor, ...], fits: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each `[n, tries]` value at the first try that fits (the first try where none does), and
    whether one did: torchvision's loop, vectorised."""
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)
    return [v.gather(1, first)[:, 0] for v in values], fits.any(dim=1)


def _positions(n: int, rows, cols, generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(top, left) ~ U{0..rows-1} x U{0..cols-1} (numbers or `[n]` tensors): one `[n, 2]` float64 draw.
    A position p * range with p in [0, 1) in float64 floors to at most range - 1 (the product
    rounds below range for every integer range), so no clamp is needed: torchvision's randint."""
    pos = draw(torch.rand, (n, 2), generator, device, torch.float64)
    return torch.floor(pos[:, 0] * rows), torch.floor(pos[:, 1] * cols)


def full_boxes(n: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """The whole image as a crop box, for every sample: plain resize through the crop kernel.

    Built by fills on the device, not from a host list (a host-to-device copy would synchronise).
    """
    boxes = torch.zeros(n, 4, dtype=torch.int64, device=device)
    boxes[:, 2] = height
    boxes[:, 3] = width
    return boxes


def erasing_boxes(n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                  generator: torch.Generator | None, device: torch.device,
                  tries: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """RandomErasing's boxes `[n, 4]` (top, left, h, w) and whether one was found (`[n]` bool).

    torchvision's rule, vectorised: `tries` candidates of area ~ U(scale) * H * W and log aspect
    ~ U(log ratio), h = round(sqrt(area * aspect)), w = round(sqrt(area / aspect)); the first with
    h < H and w < W wins, at top ~ U{0..H-h}, left ~ U{0..W-w}; with none, nothing is erased.
    Draws, in order: `[n, tries, 2]` uniforms (area, log-aspect), then `[n, 2]` (top, left), float64.
    """
    area, aspect = _tries(n, height * width, scale, ratio, tries, generator, device)
    h = torch.round(torch.sqrt(area * aspect))
    w = torch.round(torch.sqrt(area / aspect))
    (h, w), found = _first_fitting((h, w), (h < height) & (w < width))
    top, left = _positions(n, height - h + 1, width - w + 1, generator, device)
    return torch.stack([top, left, h, w], dim=1).to(torch.int64), found


def crop_offsets(n: int, height: int, width: int, size: tuple[int, int], generator: torch.Generator | None,
                 device: torch.device) -> torch.Tensor:
    """RandomCrop's (top, left) `[n, 2]` int64: top ~ U{0..H-h}, left ~ U{0..W-w}."""
    top, left = _positions(n, height - size[0] + 1, width - size[1] + 1, generator, device)
    return torch.stack([top, left], dim=1).to(torch.int64)


def affine_params(n: int, height: int, width: int, degrees: tuple[float, float], translate: tuple[float, float],
                  scale: tuple[float, float], shear_x: tuple[float, float], shear_y: tuple[float, float],
                  generator: torch.Generator | None, device: torch.device) -> dict[str, torch.Tensor]:
    """RandomAffine's parameters per sample, float64 `[n]` each: angle ~ U(degrees); tx, ty =
    round(U(-f W, f W)), round(U(-f H, f H)) for translate fractions f (whole pixels, as
    torchvision); scale ~ U(scale); shears ~ U(shear_x), U(shear_y), in degrees. One `[n, 6]`
    draw of uniforms, in that order."""
    u = draw(torch.rand, (n, 6), generator, device, torch.float64)

    def between(col, lo, hi):
        return lo + (hi - lo) * u[:, col]
    max_dx, max_dy = translate[0] * width, translate[1] * height
    return {"angle": between(0, *degrees), "tx": torch.round(between(1, -max_dx, max_dx)),
            "ty": torch.round(between(2, -max_dy, max_dy)), "scale": between(3, *scale),
            "shear_x": between(4, *shear_x), "shear_y": between(5, *shear_y)}


def perspective_corners(n: int, height: int, width: int, distortion: float, generator: torch.Generator | None,
                        device: torch.device) -> torch.Tensor:
    """RandomPerspective's end points per sample, `[N, 4, 2]` (x, y) float64, corners top-left,
    top-right, bottom-right, bottom-left: each moves inward by a whole number of pixels, uniform
    below `int(distortion * (side // 2)) + 1` on each axis (torchvision's `make_params`)."""
    bound_h, bound_w = int(distortion * (height // 2)) + 1, int(distortion * (width // 2)) + 1
    moves = draw(torch.rand, (n, 4, 2), generator, device).to(torch.float64)
    mx, my = (moves[:, :, 0] * bound_w).floor_(), (moves[:, :, 1] * bound_h).floor_()
    x = torch.stack([mx[:, 0], mx[:, 1] + (width - bound_w), mx[:, 2] + (width - bound_w), mx[:, 3]], dim=1)
    y = torch.stack([my[:, 0], my[:, 1], my[:, 2] + (height - bound_h), my[:, 3] + (height - bound_h)], dim=1)
    return torch.stack([x, y], dim=2)


def perspective_coeffs(corners: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The `[N, 8]` float32 coefficients that map each output pixel onto the input, for the image
    corners moved to `corners` (torchvision's `_get_perspective_coeffs`: its 8x8 system, solved in
    float64, kept in float32). `solve_ex` skips the error check, so there is no host read."""
    start = [(0.0, 0.0), (width - 1.0, 0.0), (width - 1.0, height - 1.0), (0.0, height - 1.0)]
    one, zero = torch.ones_like(corners[:, 0, 0]), torch.zeros_like(corners[:, 0, 0])
    rows, targets = [], []
    for i, (sx, sy) in enumerate(start):
        ex, ey = corners[:, i, 0], corners[:, i, 1]
        rows += [torch.stack([ex, ey, one, zero, zero, zero, -sx * ex, -sx * ey], dim=1),
                 torch.stack([zero, zero, zero, ex, ey, one, -sy * ex, -sy * ey], dim=1)]
        targets += [zero + sx, zero + sy]
    solution, _ = torch.linalg.solve_ex(torch.stack(rows, dim=1), torch.stack(targets, dim=1))
    return solution.to(torch.float32)
