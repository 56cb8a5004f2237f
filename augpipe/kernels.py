"""Pure batched kernels: `(images, per-sample params) -> images`, no randomness inside.

Images are float `[N, 3, H, W]` in [0, 1]; every parameter is a tensor with a leading `N`, so each
sample gets its own value in one batched call (no Python loop over samples). Each kernel states the
`torchvision.transforms.v2.functional` call it reproduces; tests feed the same parameters to both.

Why our own kernels instead of Kornia's modules: Kornia routes crops through a perspective warp
(a 3x3 matrix per sample, `warp_perspective`), hue through a full HSV round trip with atan2-free
but many-temporaries code, and wraps every op in parameter bookkeeping. The versions here are a
single `grid_sample` for crops, a branch-free hue rotation, and a grouped convolution for
per-sample blur; `tests/test_kernels.py` checks each against torchvision.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses.
_LUMA = (0.2989, 0.587, 0.114)


def _per_sample(values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Shape `[N]` parameters as `[N, 1, 1, 1]` to broadcast over images."""
    return values.to(images.dtype).view(-1, 1, 1, 1)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop box `(top, left, h, w)` of each image and resize it to `size`, bilinearly.

    Matches `F.resized_crop(img, top, left, h, w, size, antialias=False)` per sample: sample
    points are the output pixel centres mapped into the box (half-pixel convention) and clamped
    to the box's edge pixels, exactly as resizing the cropped image does. One `grid_sample` call
    for the whole batch. No antialiasing when shrinking (as `antialias=False`).
    """
    n, _, in_h, in_w = images.shape
    out_h, out_w = size
    boxes = boxes.to(device=images.device, dtype=torch.float32)
    top, left, bh, bw = boxes.unbind(1)

    def axis(start, length, out_len, in_len):
        centres = (torch.arange(out_len, device=images.device, dtype=torch.float32) + 0.5)
        coords = start[:, None] + centres[None, :] * (length / out_len)[:, None] - 0.5
        coords = torch.minimum(torch.maximum(coords, start[:, None]),
                               (start + length - 1)[:, None])
        # align_corners=True: -1 and +1 are the centres of the first and last pixel.
        return coords * (2.0 / max(in_len - 1, 1)) - 1.0

    gx = axis(left, bw, out_w, in_w)  # [N, out_w]
    gy = axis(top, bh, out_h, in_h)   # [N, out_h]
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    grid = grid.to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)


def hflip(images: torch.Tensor) -> torch.Tensor:
    """`F.horizontal_flip`."""
    return images.flip(-1)


def brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """`F.adjust_brightness(img, factor)`: scale, clamp to [0, 1]."""
    return (images * _per_sample(factor, images)).clamp_(0.0, 1.0)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """`F.rgb_to_grayscale(img, num_output_channels=3)`."""
    r, g, b = images.unbind(1)
    luma = (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)
    return luma.expand_as(images).contiguous()


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_sample(factor, a)
    return (f * a + (1.0 - f) * b).clamp_(0.0, 1.0)


def contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """`F.adjust_contrast(img, factor)`: blend with the image's mean luma."""
    r, g, b = images.unbind(1)
    luma_mean = (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).mean(dim=(1, 2))
    return _blend(images, luma_mean.view(-1, 1, 1, 1), factor)


def saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """`F.adjust_saturation(img, factor)`: blend with the grayscale image."""
    r, g, b = images.unbind(1)
    luma = (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)
    return _blend(images, luma, factor)


def hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """`F.adjust_hue(img, shift)`: rotate the HSV hue by `shift` turns, keep S and V.

    Computes the hue as torchvision does, then converts back with the branch-free form
    `c = V - V*S*clamp(min(k, 4-k), 0, 1)`, `k = (n + 6h) mod 6` for n = 5, 3, 1 (R, G, B),
    which avoids torchvision's six-way select and its stacked temporaries.
    """
    r, g, b = images.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    h6 = torch.where(is_r, bc - gc, torch.where(is_g, 2.0 + rc - bc, 4.0 + gc - rc))
    h6 = torch.where(delta > 0, h6, torch.zeros_like(h6))
    # torchvision: h = fmod(h6/6 + 1, 1); h = (h + shift) % 1, all in turns.
    h = torch.remainder(torch.fmod(h6 / 6.0 + 1.0, 1.0) + shift.to(images.dtype).view(-1, 1, 1), 1.0)
    h6 = h * 6.0
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + h6, 6.0)
        out.append(maxc - delta * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    # torchvision can land a rounding error above 1.0; the [0, 1] contract holds here.
    return torch.stack(out, dim=1).clamp_(0.0, 1.0)


def gaussian_kernels(sigma: torch.Tensor, kernel_size: int, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian taps `[N, kernel_size]`, torchvision's `_get_gaussian_kernel1d`."""
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, kernel_size, device=sigma.device, dtype=dtype)
    pdf = torch.exp(-0.5 * (x[None, :] / sigma.to(dtype)[:, None]) ** 2)
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """`F.gaussian_blur(img, [k, k], [sigma, sigma])` with one sigma per sample.

    Separable: one grouped convolution per axis, a group per (sample, channel), reflect padding.
    """
    n, c, h, w = images.shape
    taps = gaussian_kernels(sigma, kernel_size, images.dtype).repeat_interleave(c, dim=0)
    pad = kernel_size // 2
    x = images.reshape(1, n * c, h, w)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, taps.view(n * c, 1, kernel_size, 1), groups=n * c)
    x = F.conv2d(x, taps.view(n * c, 1, 1, kernel_size), groups=n * c)
    return x.view(n, c, h, w).clamp_(0.0, 1.0)  # taps sum to 1 only up to rounding


def solarize(images: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """`F.solarize(img, threshold)`: invert pixels at or above the threshold."""
    t = _per_sample(threshold, images)
    return torch.where(images >= t, 1.0 - images, images)


def gaussian_noise(images: torch.Tensor, std: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """`F.gaussian_noise(img, mean=0, sigma=std, clip=True)` with the standard normal `noise` given."""
    return (images + _per_sample(std, images) * noise.to(images.dtype)).clamp_(0.0, 1.0)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """`F.normalize(img, mean, std)` with per-channel `mean`, `std` of shape `[3]`."""
    mean = mean.to(images.device, images.dtype).view(1, -1, 1, 1)
    std = std.to(images.device, images.dtype).view(1, -1, 1, 1)
    return (images - mean) / std
