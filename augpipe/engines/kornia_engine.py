"""Stock Kornia: one `AugmentationSequential` per view, from Kornia's own augmentation modules.

`TRANSLATE`: op name -> `(op, view size) -> Kornia module` (None: nothing to run).

The auto-augment ops map to `kornia.augmentation.auto` (RandAugment, TrivialAugment, AutoAugment
with the same named policy), for cost comparisons: Kornia's own implementations, whose magnitude
tables are Kornia's and which draw one op choice (one sub-policy) per batch, where augpipe and
torchvision draw one per image.
"""
from __future__ import annotations

import torch

from augpipe.engines.base import Unsupported


def _K():
    import kornia.augmentation as K
    return K


def _blur(op, size):
    k = op.kernel_size(size)
    return _K().RandomGaussianBlur((k, k), op.sigma, p=op.p)


def _solarize(op, size):
    # Kornia draws the threshold around 0.5 (+- thresholds); 0 spread = fixed 0.5.
    if op.threshold != 0.5:
        raise Unsupported("kornia: solarize threshold other than 0.5")
    return _K().RandomSolarize(thresholds=0.0, additions=0.0, p=op.p)


def _noise(op, size):
    if op.std[0] != op.std[1]:
        raise Unsupported("kornia: noise with a std range (Kornia's std is fixed per call)")
    return _K().RandomGaussianNoise(std=op.std[0], p=op.p)


def _normalize(op, size):
    mean, std = op.mean_std()
    return _K().Normalize(torch.tensor(mean), torch.tensor(std))


def _auto():
    import kornia.augmentation.auto as auto
    return auto


def _random_crop(op, size):
    return _K().RandomCrop(size, padding=op.padding or None, pad_if_needed=op.pad_if_needed, fill=op.fill,
                           padding_mode={"edge": "replicate"}.get(op.mode, op.mode), p=op.p)


def _erasing(op, size):
    try:
        value = float(op.value)
    except ValueError:
        raise Unsupported(f"kornia: erasing value {op.value!r} (Kornia erases with one number)") from None
    return _K().RandomErasing(scale=op.scale, ratio=op.ratio, value=value, p=op.p)


def _perspective(op, size):
    if op.fill != 0:
        raise Unsupported(f"kornia: perspective fill {op.fill:g} (Kornia fills with 0)")
    return _K().RandomPerspective(op.distortion, p=op.p, resample=op.mode.upper())


TRANSLATE = {
    "rrc": lambda op, size: _K().RandomResizedCrop(size, scale=op.scale, ratio=op.ratio, p=op.p),
    "resize": lambda op, size: _K().Resize(size),
    "flip": lambda op, size: _K().RandomHorizontalFlip(p=op.p),
    "jitter": lambda op, size: _K().ColorJitter(op.brightness, op.contrast, op.saturation, op.hue, p=op.p),
    "gray": lambda op, size: _K().RandomGrayscale(p=op.p),
    "blur": _blur,
    "solarize": _solarize,
    "noise": _noise,
    "normalize": _normalize,
    "identity": lambda op, size: None,
    "rcrop": _random_crop,
    "vflip": lambda op, size: _K().RandomVerticalFlip(p=op.p),
    "erasing": _erasing,
    "trivial_augment": lambda op, size: _auto().TrivialAugment(),
    "rand_augment": lambda op, size: _auto().RandAugment(n=op.num_ops, m=op.magnitude),
    "auto_augment": lambda op, size: _auto().AutoAugment(op.policy),
    "perspective": _perspective,
}


def build(policy, **_):
    chains = []
    for view in policy.views:
        mods = [m for m in (TRANSLATE[op.name](op, view.size) for op in view.ops) if m is not None]
        chains.append(_K().AugmentationSequential(*mods))

    def run(images: torch.Tensor, generator=None):
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        # Kornia's noise does not clip; ours and torchvision's do.
        return [chain(x).clamp(0, 1) if any(o.name == "noise" for o in v.ops) else chain(x)
                for chain, v in zip(chains, policy.views)]
    return run
