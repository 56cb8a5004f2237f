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


def _maybe(op, transform):
    """`transform` applied with the op's probability (torchvision's own ops that have no `p`)."""
    return transform if op.p >= 1 else _v2().RandomApply([transform], p=op.p)


def _fixed(op, key: str):
    lo, hi = getattr(op, key)
    if lo != hi:
        raise Unsupported(f"torchvision: {op.name} with a {key} range (torchvision's is fixed)")
    return lo


def interpolation(op):
    """The op's `mode` as torchvision's InterpolationMode (torchaug takes the same)."""
    return _v2().InterpolationMode(op.mode)


def fill_or_none(op):
    """The auto-augment ops' `fill` as torchvision takes it: None (`none`) or a number."""
    return None if op.fill == "none" else float(op.fill)


def _erasing(op, size):
    value = "random" if op.value == "random" else [float(v) for v in op.value.split("/")]
    return _v2().RandomErasing(p=op.p, scale=op.scale, ratio=op.ratio, value=value)


def _affine(op, size):
    shear = [*op.shear_x, *op.shear_y]
    return _maybe(op, _v2().RandomAffine(op.degrees, translate=(op.translate_x, op.translate_y), scale=op.scale,
                                         shear=shear, interpolation=interpolation(op), fill=op.fill))


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
    "rcrop": lambda op, size: _v2().RandomCrop(size, padding=op.padding or None, pad_if_needed=op.pad_if_needed,
                                               fill=op.fill, padding_mode=op.mode),
    "center_crop": lambda op, size: _v2().CenterCrop(size),
    "vflip": lambda op, size: _v2().RandomVerticalFlip(p=op.p),
    "invert": lambda op, size: _v2().RandomInvert(p=op.p),
    "channel_permutation": lambda op, size: _maybe(op, _v2().RandomChannelPermutation()),
    "posterize": lambda op, size: _v2().RandomPosterize(int(_fixed(op, "bits")), p=op.p),
    "sharpness": lambda op, size: _v2().RandomAdjustSharpness(_fixed(op, "factor"), p=op.p),
    "autocontrast": lambda op, size: _v2().RandomAutocontrast(p=op.p),
    "equalize": lambda op, size: _v2().RandomEqualize(p=op.p),
    "erasing": _erasing,
    "affine": _affine,
    "rotate": lambda op, size: _maybe(op, _v2().RandomRotation(op.degrees, interpolation=interpolation(op), fill=op.fill)),
    "trivial_augment": lambda op, size: _maybe(op, _v2().TrivialAugmentWide(op.bins, interpolation(op), fill_or_none(op))),
    "rand_augment": lambda op, size: _maybe(op, _v2().RandAugment(op.num_ops, op.magnitude, op.bins, interpolation(op),
                                                                   fill_or_none(op))),
    "auto_augment": lambda op, size: _maybe(op, _v2().AutoAugment(_v2().AutoAugmentPolicy(op.policy), interpolation(op),
                                                                   fill_or_none(op))),
    "perspective": lambda op, size: _v2().RandomPerspective(op.distortion, p=op.p, interpolation=interpolation(op),
                                                            fill=op.fill),
}


def build(policy, **_):
    v2 = _v2()
    composes = [v2.Compose([v2.ToDtype(torch.float32, scale=True)]
                           + [TRANSLATE[op.name](op, view.size) for op in view.ops]) for view in policy.views]

    def run(images: torch.Tensor, generator=None):
        return [torch.stack([compose(img) for img in images]) for compose in composes]
    return run
