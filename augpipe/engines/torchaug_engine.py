"""torchaug's batch transforms (the closest peer: torchvision-style transforms on a whole batch).

Optional and not a dependency: torchaug 0.6.1 pins `torchvision<0.20`, which the project's
torchvision does not meet; `pip install --no-deps torchaug` runs it with ours. Per sample where
torchaug can draw per sample (`batch_transform=True`; crops, erasing and colour jitter with one
chunk per image), per batch where it cannot: its RandomCrop, RandAugment, TrivialAugmentWide and
AutoAugment draw one parameter set (one op) for the whole batch, so on those it does less work
than augpipe and torchvision (as Kornia's auto-augment does).

`TRANSLATE`: op name -> `(op, view size, batch size) -> torchaug transform`.
"""
from __future__ import annotations

import functools

import torch

from augpipe.engines.base import Unsupported
from augpipe.engines.torchvision_engine import fill_or_none, interpolation


def _t():
    from torchaug import transforms
    return transforms


def _rrc(op, size, n):
    if op.p < 1:
        raise Unsupported("torchaug: rrc with p < 1")
    return _t().RandomResizedCrop(size, scale=op.scale, ratio=op.ratio, antialias=False, num_chunks=n,
                                  batch_transform=True)


def _erasing(op, size, n):
    if op.value == "random" or "/" in op.value:
        raise Unsupported("torchaug: erasing with a per-pixel or per-channel value")
    return _t().RandomErasing(p=op.p, scale=op.scale, ratio=op.ratio, value=float(op.value), num_chunks=n,
                              batch_transform=True)


def _noise(op, size, n):
    """torchaug has no Gaussian noise: torch's own, per sample (std uniform in the op's range, a
    coin of `p`), added and clipped as torchvision's GaussianNoise(clip=True)."""
    def noise(images: torch.Tensor) -> torch.Tensor:
        rows = images.shape[0]
        std = torch.empty(rows, device=images.device).uniform_(*op.std)
        std = torch.where(torch.rand(rows, device=images.device) < op.p, std, torch.zeros_like(std))
        return (images + std.view(-1, 1, 1, 1) * torch.randn_like(images)).clamp_(0.0, 1.0)
    return noise


def _blur(op, size, n):
    return _t().RandomGaussianBlur(op.kernel_size(size), sigma=op.sigma, p=op.p, batch_transform=True)


TRANSLATE = {
    "rrc": _rrc,
    "flip": lambda op, size, n: _t().RandomHorizontalFlip(p=op.p, batch_transform=True),
    "jitter": lambda op, size, n: _t().RandomColorJitter(op.brightness, op.contrast, op.saturation, op.hue, p=op.p,
                                                         num_chunks=n, batch_transform=True),
    "gray": lambda op, size, n: _t().RandomGrayscale(p=op.p, batch_transform=True),
    "blur": _blur,
    "solarize": lambda op, size, n: _t().RandomSolarize(threshold=op.threshold, p=op.p, batch_transform=True),
    "normalize": lambda op, size, n: _t().Normalize(*op.mean_std()),
    "resize": lambda op, size, n: _t().Resize(size, antialias=False),
    "identity": lambda op, size, n: _t().Identity(),
    "vflip": lambda op, size, n: _t().RandomVerticalFlip(p=op.p, batch_transform=True),
    "invert": lambda op, size, n: _t().RandomInvert(p=op.p, batch_transform=True),
    "equalize": lambda op, size, n: _t().RandomEqualize(p=op.p, batch_transform=True),
    "autocontrast": lambda op, size, n: _t().RandomAutocontrast(p=op.p, batch_transform=True),
    "erasing": _erasing,
    "noise": _noise,
    # one draw per batch: torchaug has no per-sample form of these
    "rcrop": lambda op, size, n: _t().RandomCrop(size, padding=op.padding or None, pad_if_needed=op.pad_if_needed,
                                                 fill=op.fill, padding_mode=op.mode),
    "trivial_augment": lambda op, size, n: _t().TrivialAugmentWide(op.bins, interpolation(op), fill_or_none(op)),
    "rand_augment": lambda op, size, n: _t().RandAugment(op.num_ops, op.magnitude, op.bins, interpolation(op), fill_or_none(op)),
    "auto_augment": lambda op, size, n: _t().AutoAugment(_t().AutoAugmentPolicy(op.policy), interpolation(op), fill_or_none(op)),
}


def build(policy, **_):
    _t()  # ImportError here, at build time, when torchaug is not installed

    @functools.lru_cache(maxsize=4)
    def composes(n: int):
        """One torchaug chain per view for batches of `n` (per-sample chunks are counted in images)."""
        t = _t()
        return [t.Compose([t.ToDtype(torch.float32, scale=True)]
                          + [TRANSLATE[op.name](op, view.size, n) for op in view.ops]) for view in policy.views]

    def run(images: torch.Tensor, generator=None):
        return [compose(images) for compose in composes(images.shape[0])]
    return run
