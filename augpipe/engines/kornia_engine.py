"""Stock Kornia: one `AugmentationSequential` per view, from Kornia's own augmentation modules."""
from __future__ import annotations

import torch

from augpipe.engines import Unsupported
from augpipe.ops import NORMALIZE_STATS


def _module(op, size):
    import kornia.augmentation as K
    name = op.name
    if name == "rrc":
        return K.RandomResizedCrop(size, scale=op.scale, ratio=op.ratio, p=op.p)
    if name == "resize":
        return K.Resize(size)
    if name == "flip":
        return K.RandomHorizontalFlip(p=op.p)
    if name == "jitter":
        return K.ColorJitter(op.brightness, op.contrast, op.saturation, op.hue, p=op.p)
    if name == "gray":
        return K.RandomGrayscale(p=op.p)
    if name == "blur":
        k = op.kernel_size(size)
        return K.RandomGaussianBlur((k, k), op.sigma, p=op.p)
    if name == "solarize":
        # Kornia draws the threshold around 0.5 (+- thresholds); 0 spread = fixed 0.5.
        if op.threshold != 0.5:
            raise Unsupported("kornia: solarize threshold other than 0.5")
        return K.RandomSolarize(thresholds=0.0, additions=0.0, p=op.p)
    if name == "noise":
        if op.std[0] != op.std[1]:
            raise Unsupported("kornia: noise with a std range (Kornia's std is fixed per call)")
        return K.RandomGaussianNoise(std=op.std[0], p=op.p)
    if name == "normalize":
        mean, std = NORMALIZE_STATS[op.stats]
        return K.Normalize(torch.tensor(mean), torch.tensor(std))
    if name == "identity":
        return None
    raise Unsupported(f"kornia: no equivalent for op {name!r}")


def build(policy, **_):
    import kornia.augmentation as K
    chains = []
    for view in policy.views:
        mods = [m for m in (_module(op, view.size) for op in view.ops) if m is not None]
        chains.append(K.AugmentationSequential(*mods))

    def run(images: torch.Tensor, generator=None):
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        # Kornia's noise does not clip; ours and torchvision's do.
        return [chain(x).clamp(0, 1) if any(o.name == "noise" for o in v.ops) else chain(x)
                for chain, v in zip(chains, policy.views)]
    return run
