"""Built-in ops of torchvision's training recipes beyond the SSL set (the CIFAR crop, erasing, the
photometric ops of AutoAugment / RandAugment), each a sampler plus a kernel registered by its
spec-string name, exactly as `augpipe/ops.py`'s are (the contract: `augpipe.op`).

Every kernel equals its `torchvision.transforms.v2.functional` counterpart on float images for
the same parameters (tests/augpipe/test_recipe_ops.py); uint8 input is converted to float first,
so the uint8-specific roundings of torchvision (posterize's bit mask, sharpness' rounding) are
within one grey level.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from augpipe import kernels, sampling
from augpipe.op import Op, Range, check_range, register_op
from augpipe.rows import loops_pay


def _check_int(op: str, key: str, value, low: int, high: int) -> None:
    if not (isinstance(value, int) and low <= value <= high):
        raise ValueError(f"{op}: {key} must be an integer in [{low}, {high}], got {value!r}")


@dataclass
class _WholeImage(Op):
    """An op whose kernel is one parameter-free function of the images (`transform`), kept
    per sample with probability `p` by the policy's gating."""
    positional: ClassVar[tuple[str, ...]] = ("p",)
    transform: ClassVar[Callable[[torch.Tensor], torch.Tensor]]
    p: float = 0.5

    def kernel(self, images, params, ctx):
        return type(self).transform(images)


@register_op
@dataclass
class VerticalFlip(_WholeImage):
    """`vflip(p=0.5)`: RandomVerticalFlip."""
    name: ClassVar[str] = "vflip"
    transform = kernels.vflip


@register_op
@dataclass
class Invert(_WholeImage):
    """`invert(p=0.5)`: RandomInvert."""
    name: ClassVar[str] = "invert"
    transform = kernels.invert


@register_op
@dataclass
class ChannelPermutation(Op):
    """`channel_permutation`: RandomChannelPermutation, one random order of the channels per sample."""
    name: ClassVar[str] = "channel_permutation"
    positional: ClassVar[tuple[str, ...]] = ("p",)

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        params["order"] = sampling.permutations(n, 3, ctx.generator, ctx.device)
        return params

    def kernel(self, images, params, ctx):
        return kernels.permute_channels(images, params["order"])


@register_op
@dataclass
class Posterize(Op):
    """`posterize(bits=4, p=0.5)`: RandomPosterize; `bits=LO:HI` draws an integer per sample."""
    name: ClassVar[str] = "posterize"
    positional: ClassVar[tuple[str, ...]] = ("bits", "p")
    bits: Range = (4.0, 4.0)
    p: float = 0.5

    def validate(self) -> None:
        super().validate()
        check_range(self.name, "bits", self.bits, 0, 8)
        if any(b != int(b) for b in self.bits):
            raise ValueError(f"posterize: bits must be integers in [0, 8], got {self.bits[0]:g}:{self.bits[1]:g}")

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        lo, hi = self.bits
        params["bits"] = sampling.uniform(n, lo, hi + 1, ctx.generator, ctx.device).floor_().clamp_max_(hi)
        return params

    def kernel(self, images, params, ctx):
        return kernels.posterize(images, params["bits"])


@register_op
@dataclass
class Sharpness(Op):
    """`sharpness(factor=2, p=0.5)`: RandomAdjustSharpness (`factor=LO:HI` draws one per sample)."""
    name: ClassVar[str] = "sharpness"
    positional: ClassVar[tuple[str, ...]] = ("factor", "p")
    factor: Range = (2.0, 2.0)
    p: float = 0.5

    def validate(self) -> None:
        super().validate()
        check_range(self.name, "factor", self.factor, 0.0)

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        params["factor"] = sampling.uniform(n, *self.factor, ctx.generator, ctx.device)
        return params

    def kernel(self, images, params, ctx):
        return kernels.adjust_sharpness(images, params["factor"])


@register_op
@dataclass
class Autocontrast(_WholeImage):
    """`autocontrast(p=0.5)`: RandomAutocontrast."""
    name: ClassVar[str] = "autocontrast"
    transform = kernels.autocontrast


_VALUE = re.compile(r"^(random|-?[\d.]+(/-?[\d.]+){0,2})$")


@register_op
@dataclass
class Erasing(Op):
    """`erasing(p=0.5, scale=0.02:0.33, ratio=0.3:3.3, value=0)`: RandomErasing. `value` is a
    number, three numbers `r/g/b`, or `random` (per-pixel standard normal draws, as torchvision's
    `value=None`, which are not clipped to [0, 1])."""
    name: ClassVar[str] = "erasing"
    positional: ClassVar[tuple[str, ...]] = ("p",)
    gated: ClassVar[bool] = False  # the box is empty where the coin says no or no try fitted
    p: float = 0.5
    scale: Range = (0.02, 0.33)
    ratio: Range = (0.3, 3.3)
    value: str = "0"

    def validate(self) -> None:
        super().validate()
        check_range(self.name, "scale", self.scale, 0.0, 1.0)
        check_range(self.name, "ratio", self.ratio, 1e-6)
        if not _VALUE.match(self.value):
            raise ValueError(f"erasing: value must be a number, r/g/b or random, got {self.value!r}")

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        h, w = ctx.in_size
        boxes, found = sampling.erasing_boxes(n, h, w, self.scale, self.ratio, ctx.generator, ctx.device)
        params["boxes"] = torch.where((params["apply"] & found)[:, None], boxes, torch.zeros_like(boxes))
        if self.value == "random":
            params["values"] = sampling.normal((n, 3, h, w), ctx.generator, ctx.device)
        return params

    def kernel(self, images, params, ctx):
        values = params.get("values")
        if values is None:
            channels = [float(v) for v in self.value.split("/")]
            values = self.constant(channels * (3 if len(channels) == 1 else 1), images).view(1, 3, 1, 1)
        if ctx.gating == "subset" and (ctx.inplace or loops_pay(images.shape)):
            # the CPU path: only the boxes are written (a copy first costs more than a mask on small images)
            return kernels.erase_rows(images, params["boxes"], values, inplace=ctx.inplace)
        return kernels.erase(images, params["boxes"], values)


@register_op
@dataclass
class RandomCrop(Op):
    """`rcrop(padding=0, pad_if_needed=false, fill=0, mode=constant)`: RandomCrop to the view size
    after padding every side by `padding` (`mode`: constant with `fill`, edge, reflect, symmetric);
    `pad_if_needed` pads an image smaller than the view up to it. CIFAR's `rcrop(padding=4)`."""
    name: ClassVar[str] = "rcrop"
    positional: ClassVar[tuple[str, ...]] = ("padding",)
    changes_size: ClassVar[bool] = True
    gated: ClassVar[bool] = False
    padding: int = 0
    pad_if_needed: bool = False
    fill: float = 0.0
    mode: str = "constant"

    def validate(self) -> None:
        super().validate()
        _check_int(self.name, "padding", self.padding, 0, 1 << 16)
        if self.mode not in kernels.PAD_MODES:
            raise ValueError(f"rcrop: mode must be one of {', '.join(kernels.PAD_MODES)}, got {self.mode!r}")

    def padded(self, in_size, out_size) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) padding, static: `padding`, then up to the view if asked."""
        h, w = in_size[0] + 2 * self.padding, in_size[1] + 2 * self.padding
        extra_h = max(0, out_size[0] - h) if self.pad_if_needed else 0
        extra_w = max(0, out_size[1] - w) if self.pad_if_needed else 0
        if h + extra_h < out_size[0] or w + extra_w < out_size[1]:
            raise ValueError(f"rcrop: the view ({out_size[0]}x{out_size[1]}) is larger than the padded image "
                             f"({h}x{w}); pass pad_if_needed=true or a larger padding")
        return (self.padding + extra_w, self.padding + extra_h) * 2

    def sample(self, n, ctx):
        left, top, right, bottom = self.padded(ctx.in_size, ctx.out_size)
        h, w = ctx.in_size[0] + top + bottom, ctx.in_size[1] + left + right
        return {"apply": sampling.bernoulli(n, 1.0, ctx.generator, ctx.device),
                "offsets": sampling.crop_offsets(n, h, w, ctx.out_size, ctx.generator, ctx.device)}

    def kernel(self, images, params, ctx):
        padding = self.padded(tuple(images.shape[-2:]), ctx.out_size)
        if ctx.gating == "subset" and loops_pay(ctx.out_size):
            # the CPU path on large views: a copy per row, the constant padding never made
            if self.mode == "constant":
                return kernels.crop_rows(images, params["offsets"], ctx.out_size, padding, self.fill)
            return kernels.crop_rows(kernels.pad(images, padding, self.mode), params["offsets"], ctx.out_size)
        padded = kernels.pad(images, padding, self.mode, self.fill)
        return kernels.crop(padded, params["offsets"], ctx.out_size)


@register_op
@dataclass
class CenterCrop(Op):
    """`center_crop`: CenterCrop to the view size (zero-padded first where the image is smaller)."""
    name: ClassVar[str] = "center_crop"
    changes_size: ClassVar[bool] = True
    gated: ClassVar[bool] = False

    def sample(self, n, ctx):
        return {"apply": sampling.bernoulli(n, 1.0, ctx.generator, ctx.device)}

    def kernel(self, images, params, ctx):
        (h, w), (out_h, out_w) = images.shape[-2:], ctx.out_size
        pad_h, pad_w = max(0, out_h - h), max(0, out_w - w)  # torchvision: floor before, ceil after
        images = kernels.pad(images, (pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2))
        h, w = images.shape[-2:]
        top, left = int(round((h - out_h) / 2.0)), int(round((w - out_w) / 2.0))
        return images[..., top:top + out_h, left:left + out_w]


_INTERPOLATIONS = ("nearest", "bilinear")


@register_op
@dataclass
class Affine(Op):
    """`affine(degrees=0:0, translate_x=0, translate_y=0, scale=1:1, shear_x=0:0, shear_y=0:0,
    mode=nearest, fill=0)`: RandomAffine about the image centre (angles and shears in degrees;
    translations as fractions of the width and height, whole pixels per sample)."""
    name: ClassVar[str] = "affine"
    positional: ClassVar[tuple[str, ...]] = ("degrees",)
    degrees: Range = (0.0, 0.0)
    translate_x: float = 0.0
    translate_y: float = 0.0
    scale: Range = (1.0, 1.0)
    shear_x: Range = (0.0, 0.0)
    shear_y: Range = (0.0, 0.0)
    mode: str = "nearest"
    fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        check_range(self.name, "degrees", self.degrees, -360.0, 360.0)
        for key in ("translate_x", "translate_y"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{self.name}: {key} must be in [0, 1], got {getattr(self, key)}")
        check_range(self.name, "scale", self.scale, 1e-6)
        for key in ("shear_x", "shear_y"):
            check_range(self.name, key, getattr(self, key), -89.0, 89.0)
        if self.mode not in _INTERPOLATIONS:
            raise ValueError(f"{self.name}: mode must be one of {', '.join(_INTERPOLATIONS)}, got {self.mode!r}")

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        h, w = ctx.in_size
        drawn = sampling.affine_params(n, h, w, self.degrees, (self.translate_x, self.translate_y), self.scale,
                                       self.shear_x, self.shear_y, ctx.generator, ctx.device)
        params["matrix"] = kernels.inverse_affine_matrix(**drawn)
        return params

    def kernel(self, images, params, ctx):
        return kernels.affine(images, params["matrix"], self.mode, self.fill)


@register_op
@dataclass
class Rotate(Op):
    """`rotate(degrees=-30:30, mode=nearest, fill=0)`: RandomRotation (expand=False), counter-clockwise."""
    name: ClassVar[str] = "rotate"
    positional: ClassVar[tuple[str, ...]] = ("degrees",)
    degrees: Range = (-30.0, 30.0)
    mode: str = "nearest"
    fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        check_range(self.name, "degrees", self.degrees, -360.0, 360.0)
        if self.mode not in _INTERPOLATIONS:
            raise ValueError(f"{self.name}: mode must be one of {', '.join(_INTERPOLATIONS)}, got {self.mode!r}")

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        # F.rotate(angle) is the affine matrix of -angle (torchvision's rotate_image)
        angle = sampling.uniform(n, *self.degrees, ctx.generator, ctx.device)
        zero = torch.zeros(n, device=ctx.device)
        params["matrix"] = kernels.inverse_affine_matrix(-angle, zero, zero, zero + 1, zero, zero)
        return params

    def kernel(self, images, params, ctx):
        return kernels.affine(images, params["matrix"], self.mode, self.fill)


@register_op
@dataclass
class Perspective(Op):
    """`perspective(distortion=0.5, mode=bilinear, fill=0, p=0.5)`: RandomPerspective; each corner
    moves inward by up to `distortion` times half the side, per sample."""
    name: ClassVar[str] = "perspective"
    positional: ClassVar[tuple[str, ...]] = ("distortion",)
    distortion: float = 0.5
    mode: str = "bilinear"
    fill: float = 0.0
    p: float = 0.5

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.distortion <= 1.0:
            raise ValueError(f"{self.name}: distortion must be in [0, 1], got {self.distortion}")
        if self.mode not in _INTERPOLATIONS:
            raise ValueError(f"{self.name}: mode must be one of {', '.join(_INTERPOLATIONS)}, got {self.mode!r}")

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        h, w = ctx.in_size
        corners = sampling.perspective_corners(n, h, w, self.distortion, ctx.generator, ctx.device)
        params["coeffs"] = sampling.perspective_coeffs(corners, h, w)
        return params

    def kernel(self, images, params, ctx):
        return kernels.perspective(images, params["coeffs"], self.mode, self.fill)


@register_op
@dataclass
class Equalize(_WholeImage):
    """`equalize(p=0.5)`: RandomEqualize (per channel, on 256 levels, as torchvision)."""
    name: ClassVar[str] = "equalize"
    transform = kernels.equalize
