"""torchvision.transforms.v2 applied image by image: what a DataLoader worker does per sample.

`TRANSLATE`: op name -> `(op, view size) -> v2 transform`.
"""
from __future__ import annotations

import torch

from augpipe.engines.base import Unsupported


def _v2():
    from torchvision.transforms import v2
    return v2


def _rrc(op, size):
    v2 = _v2()
    t = v2.RandomResizedCrop(size, scale=op.scale, ratio=op.ratio, antialias=False)
    return t if op.p >= 1 else v2.RandomChoice([t, v2.Resize(size, antialias=False)], [op.p, 1 - op.p])


def _noise(op, size):
    if op.std[0] != op.std[1]:
        raise Unsupported("torchvision: noise with a std range (GaussianNoise's sigma is fixed)")
    return _v2().RandomApply([_v2().GaussianNoise(sigma=op.std[0], clip=True)], p=op.p)


TRANSLATE = {
    "rrc": _rrc,
    "resize": lambda op, size: _v2().Resize(size, antialias=False),
    "flip": lambda op, size: _v2().RandomHorizontalFlip(p=op.p),
    "jitter": lambda op, size: _v2().RandomApply(
        [_v2().ColorJitter(op.brightness, op.contrast, op.saturation, op.hue)], p=op.p),
    "gray": lambda op, size: _v2().RandomGrayscale(p=op.p),
    "blur": lambda op, size: _v2().RandomApply(
        [_v2().GaussianBlur(op.kernel_size(size), sigma=op.sigma)], p=op.p),
    "solarize": lambda op, size: _v2().RandomSolarize(threshold=op.threshold, p=op.p),
    "noise": _noise,
    "normalize": lambda op, size: _v2().Normalize(*op.mean_std()),
    "identity": lambda op, size: _v2().Identity(),
}


def build(policy, **_):
    v2 = _v2()
    composes = [v2.Compose([v2.ToDtype(torch.float32, scale=True)]
                           + [TRANSLATE[op.name](op, view.size) for op in view.ops]) for view in policy.views]

    def run(images: torch.Tensor, generator=None):
        return [torch.stack([compose(img) for img in images]) for compose in composes]
    return run
