"""torchvision.transforms.v2 applied image by image: what a DataLoader worker does per sample."""
from __future__ import annotations

import torch

from augpipe.engines import Unsupported
from augpipe.ops import NORMALIZE_STATS


def _transform(op, size):
    from torchvision.transforms import v2
    name = op.name
    if name == "rrc":
        t = v2.RandomResizedCrop(size, scale=op.scale, ratio=op.ratio, antialias=False)
        return t if op.p >= 1 else v2.RandomChoice([t, v2.Resize(size, antialias=False)], [op.p, 1 - op.p])
    if name == "resize":
        return v2.Resize(size, antialias=False)
    if name == "flip":
        return v2.RandomHorizontalFlip(p=op.p)
    if name == "jitter":
        return v2.RandomApply([v2.ColorJitter(op.brightness, op.contrast, op.saturation, op.hue)], p=op.p)
    if name == "gray":
        return v2.RandomGrayscale(p=op.p)
    if name == "blur":
        k = op.kernel_size(size)
        return v2.RandomApply([v2.GaussianBlur(k, sigma=op.sigma)], p=op.p)
    if name == "solarize":
        return v2.RandomSolarize(threshold=op.threshold, p=op.p)
    if name == "noise":
        if op.std[0] != op.std[1]:
            raise Unsupported("torchvision: noise with a std range (GaussianNoise's sigma is fixed)")
        return v2.RandomApply([v2.GaussianNoise(sigma=op.std[0], clip=True)], p=op.p)
    if name == "normalize":
        mean, std = NORMALIZE_STATS[op.stats]
        return v2.Normalize(mean, std)
    if name == "identity":
        return v2.Identity()
    raise Unsupported(f"torchvision: no equivalent for op {name!r}")


def build(policy, **_):
    from torchvision.transforms import v2
    composes = [v2.Compose([v2.ToDtype(torch.float32, scale=True)]
                           + [_transform(op, view.size) for op in view.ops]) for view in policy.views]

    def run(images: torch.Tensor, generator=None):
        return [torch.stack([compose(img) for img in images]) for compose in composes]
    return run
