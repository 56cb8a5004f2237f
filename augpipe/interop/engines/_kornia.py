"""Stock Kornia: one `AugmentationSequential` per view, from Kornia's own augmentation modules.

Each op's module is its `counterparts.kornia(op, target)` (`target.lib`: `kornia.augmentation`,
`target.lib.auto` its auto-augment policies; None: nothing to run). The auto-augment ops map to
Kornia's own RandAugment, TrivialAugment and AutoAugment, for cost comparisons: their magnitude
tables are Kornia's and they draw one op choice (one sub-policy) per batch, where augpipe and
torchvision draw one per image.
"""
from __future__ import annotations

import torch

from augpipe.interop.engines._base import Target

KEY = "kornia"


def build(policy, **_):
    import kornia.augmentation as K
    import kornia.augmentation.auto  # noqa: F401  (K.auto: RandAugment, TrivialAugment, AutoAugment)
    chains, clip = [], []
    for view in policy.views:
        mods = [m for m in (Target("kornia", K, view.size).translate(KEY, op) for op in view.ops) if m is not None]
        chains.append(K.AugmentationSequential(*mods))
        # Kornia's noise does not clip; ours and torchvision's do
        clip.append(any(isinstance(m, K.RandomGaussianNoise) for m in mods))

    def run(images: torch.Tensor, generator=None):
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        return [chain(x).clamp(0, 1) if clipped else chain(x) for chain, clipped in zip(chains, clip)]
    return run
