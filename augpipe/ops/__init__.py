"""The ops: the op contract and its registry (`_base`), and the built-in ops by kind.

`_base` is what any op, built-in or the user's, must be (`Op`, `register_op`, the sample and apply
contexts) and the gating rule (`gate`: which rows keep a kernel's result). The built-in ops, each
a sampler (`augpipe.sampling`) plus a kernel (`augpipe.functional`), registered by their spec
names exactly as a user's op is: `_geometry`, `_color`, `_misc`, `_augment` (erasing), `_meta`
(ops made of ops: per-sample RandomChoice / RandomOrder) and `_auto_augment` (TrivialAugmentWide,
RandAugment and AutoAugment, whose learned policies are data in `_autoaugment_policies`).
Importing this package registers them all.
"""
from augpipe.ops._base import (OPS, ApplyContext, Counterparts, Op, Range, SampleContext, Size, WholeImage,
                               check_finite, check_range, coin_only, describe, gate, op_fields, register_op)
from augpipe.ops._geometry import (Affine, CenterCrop, HorizontalFlip, Perspective, RandomCrop, RandomResizedCrop,
                                   Resize, Rotate, VerticalFlip)
from augpipe.ops._color import (Autocontrast, ChannelPermutation, ColorJitter, Equalize, Grayscale, Invert, Posterize,
                                Sharpness, Solarize)
from augpipe.ops._misc import NORMALIZE_STATS, GaussianBlur, GaussianNoise, Identity, Normalize
from augpipe.ops._augment import Erasing
from augpipe.ops._meta import InRandomOrder, OneOf
from augpipe.ops._auto_augment import AutoAugment, RandAugment, TrivialAugmentWide

__all__ = ["NORMALIZE_STATS", "OPS", "Affine", "ApplyContext", "AutoAugment", "Autocontrast", "CenterCrop",
           "ChannelPermutation", "ColorJitter", "Counterparts", "Equalize", "Erasing", "GaussianBlur", "GaussianNoise",
           "Grayscale", "HorizontalFlip", "Identity", "InRandomOrder", "Invert", "Normalize", "OneOf", "Op",
           "Perspective", "Posterize", "RandAugment", "RandomCrop", "RandomResizedCrop", "Range", "Resize", "Rotate",
           "SampleContext", "Sharpness", "Size", "Solarize", "TrivialAugmentWide", "VerticalFlip", "WholeImage",
           "check_finite", "check_range", "coin_only", "describe", "gate", "op_fields", "register_op"]
