"""Kernels of no one kind: normalisation, Gaussian blur and Gaussian noise, per sample.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from augpipe.functional._utils import per_sample


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """`F.normalize(img, mean, std)` with per-channel `mean`, `std` (`[C]` tensors or sequences;
    pass tensors already on the images' device on the GPU path: building one from host numbers is
    a host-to-device copy)."""
    mean, std = (torch.as_tensor(v, dtype=images.dtype, device=images.device).view(1, -1, 1, 1) for v in (mean, std))
    return (images - mean) / std


def gaussian_kernels(sigma: torch.Tensor, kernel_size: int, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian taps `[N, kernel_size]`, torchvision's `_get_gaussian_kernel1d`."""
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, kernel_size, device=sigma.device, dtype=dtype)
    pdf = torch.exp(-0.5 * (x[None, :] / sigma.to(dtype)[:, None]) ** 2)
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """`F.gaussian_blur(img, [k, k], [sigma, sigma])` with one sigma per sample.

    Separable: one grouped convolution per axis, a group per (sample, channel), reflect padding.
    The padded planes go channels-last (the groups innermost): oneDNN's depthwise convolution
    then uses every thread, where the planar layout ran on about one; the output is
    bit-identical (benchmarks/kernel-choices.json, `blur-channels-last`).
    """
    n, c, h, w = images.shape
    taps = gaussian_kernels(sigma, kernel_size, images.dtype).repeat_interleave(c, dim=0)
    pad = kernel_size // 2
    x = images.reshape(1, n * c, h, w)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect").contiguous(memory_format=torch.channels_last)
    x = F.conv2d(x, taps.view(n * c, 1, kernel_size, 1), groups=n * c)
    x = F.conv2d(x, taps.view(n * c, 1, 1, kernel_size), groups=n * c)
    return x.view(n, c, h, w).clamp_(0.0, 1.0)  # taps sum to 1 only up to rounding


def gaussian_noise(images: torch.Tensor, std: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """`F.gaussian_noise(img, mean=0, sigma=std, clip=True)` with the standard normal `noise` given."""
    return torch.addcmul(images, per_sample(std, images), noise.to(images.dtype)).clamp_(0.0, 1.0)
