"""Geometry ops: crops and resizes (they make the view's size), flips, affine, rotation and
perspective, each a sampler (`augpipe.sampling`) plus a kernel (`augpipe.functional`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from augpipe import functional, sampling
from augpipe.functional import loops_pay
from augpipe.ops._base import Counterparts, Op, Range, WholeImage, check_range, coin_only, register_op


class _BoxResample:
    """Masks, boxes and keypoints of an op that resizes each sample's box `params["boxes"]`."""

    def move_points(self, points, params, in_size, out_size, corners=False):
        return functional.resized_crop_points(points, params["boxes"], out_size)

    def move_masks(self, masks, params, ctx):
        return functional.resized_crop_masks(masks, params["boxes"], ctx.out_size)


@register_op
@dataclass
class RandomResizedCrop(_BoxResample, Op):
    """`rrc(scale=0.08:1, ratio=0.75:1.333, antialias=false)`: torchvision's RandomResizedCrop,
    per-sample boxes.

    With p < 1, the samples not cropped are resized whole. `antialias=true` filters as
    torchvision's `antialias=True` (its default) does, each sample by its own scale: what a
    shrinking crop (a multi-crop local view, a 224 px view of a large photograph) wants, at
    several times the cost of the plain bilinear resize (`make bench-aug`). The presets do
    not antialias.
    """
    name: ClassVar[str] = "rrc"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomResizedCrop",),
        from_torchvision=lambda t, conv: conv.resized(t, RandomResizedCrop(
            scale=tuple(t.scale), ratio=tuple(t.ratio), antialias=bool(t.antialias))),
        to_torchvision=lambda op, v2: v2.maybe_else(op, v2.lib.RandomResizedCrop(
            v2.size, scale=op.scale, ratio=op.ratio, antialias=op.antialias),
            v2.lib.Resize(v2.size, antialias=op.antialias)),
        kornia=lambda op, k: k.lib.RandomResizedCrop(k.size, scale=op.scale, ratio=op.ratio, p=op.p)
        if not op.antialias else k.unsupported("rrc with antialias=true (Kornia's RandomResizedCrop has none)"),
        torchaug=lambda op, ta: ta.lib.RandomResizedCrop(ta.size, scale=op.scale, ratio=op.ratio,
                                                         antialias=op.antialias, num_chunks=ta.batch,
                                                         batch_transform=True)
        if op.p >= 1 else ta.unsupported("rrc with p < 1"),
        dali=lambda op, d: (lambda x: d.lib.random_resized_crop(x, size=list(d.size), random_area=list(op.scale),
                                                                random_aspect_ratio=list(op.ratio),
                                                                antialias=op.antialias))
        if op.p >= 1 else d.unsupported("rrc with p < 1"),
        dali_uint8=True)
    positional: ClassVar[tuple[str, ...]] = ("scale", "ratio")
    changes_size: ClassVar[bool] = True
    gated: ClassVar[bool] = False
    scale: Range = (0.08, 1.0)
    ratio: Range = (3.0 / 4.0, 4.0 / 3.0)
    antialias: bool = False

    def validate(self) -> None:
        super().validate()
        check_range(self.name, "scale", self.scale, 1e-6, 1.0)
        check_range(self.name, "ratio", self.ratio, 1e-6)

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        h, w = ctx.in_size
        boxes = sampling.resized_crop_boxes(n, h, w, self.scale, self.ratio, ctx.generator, ctx.device)
        if self.p < 1.0:
            boxes = torch.where(params["apply"][:, None], boxes, sampling.full_boxes(n, h, w, ctx.device))
        params["boxes"] = boxes
        return params

    def kernel(self, images, params, ctx):
        return functional.resized_crop(images, params["boxes"], ctx.out_size, antialias=self.antialias)


@register_op
@dataclass
class Resize(_BoxResample, Op):
    """`resize(side=0, height=0, width=0, antialias=false)`: the whole image resized: to the view
    size (implied when a view has no crop), or to a size of its own: `side` (torchvision's
    `Resize(int)`: the shorter side to `side`, the longer in proportion, from the input's static
    size) or `height` and `width` (then a crop may follow: `Resize(56)` + `CenterCrop(48)`).
    `antialias` as `rrc`'s."""
    name: ClassVar[str] = "resize"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("Resize",), from_torchvision=lambda t, conv: _resize_from(t, conv),
        to_torchvision=lambda op, v2: v2.lib.Resize(op.target_size(v2.size), antialias=op.antialias),
        kornia=lambda op, k: k.lib.Resize(op.target_size(k.size), antialias=op.antialias),
        torchaug=lambda op, ta: ta.lib.Resize(op.target_size(ta.size), antialias=op.antialias),
        dali=lambda op, d: lambda x: d.lib.resize(x, size=list(d.size), antialias=op.antialias)
        if not op.side else d.lib.resize(x, resize_shorter=op.side, antialias=op.antialias), dali_uint8=True)
    changes_size: ClassVar[bool] = True
    gated: ClassVar[bool] = False
    side: int = 0
    height: int = 0
    width: int = 0
    antialias: bool = False

    def validate(self) -> None:
        super().validate()
        for key in ("side", "height", "width"):
            _check_int(self.name, key, getattr(self, key), 0, 1 << 16)
        if (self.height > 0) != (self.width > 0) or (self.side and self.height):
            raise ValueError(f"resize: give side, or height and width, or none (the view's size), got side={self.side}, "
                             f"height={self.height}, width={self.width}")

    def output_size(self, in_size, view_size):
        if self.side:  # torchvision's _compute_resized_output_size for one int
            (h, w), short = in_size, min(in_size)
            longer = int(self.side * max(h, w) / short)
            return (self.side, longer) if h <= w else (longer, self.side)
        return (self.height, self.width) if self.height else view_size

    def target_size(self, view_size):
        """The size other libraries' Resize takes: an int (`side`), (h, w), or the view's."""
        return self.side or ((self.height, self.width) if self.height else view_size)

    def sample(self, n, ctx):
        h, w = ctx.in_size
        return {"apply": sampling.bernoulli(n, 1.0, ctx.generator, ctx.device),
                "boxes": sampling.full_boxes(n, h, w, ctx.device)}

    def kernel(self, images, params, ctx):
        if tuple(images.shape[-2:]) == tuple(ctx.out_size):  # static shapes: no tensor is read
            return images
        return functional.resized_crop(images, params["boxes"], ctx.out_size, antialias=self.antialias)


@register_op
@dataclass
class HorizontalFlip(Op):
    """`flip(p=0.5)`: RandomHorizontalFlip, mirrors left to right; a coin per sample."""
    name: ClassVar[str] = "flip"
    counterparts: ClassVar[Counterparts] = coin_only(
        "RandomHorizontalFlip", kornia=True, dali_uint8=True,
        dali=lambda op, d: lambda x: d.lib.flip(x, horizontal=d.lib.random.coin_flip(probability=float(op.p))))
    geometric: ClassVar[bool] = True
    positional: ClassVar[tuple[str, ...]] = ("p",)
    p: float = 0.5

    def kernel(self, images, params, ctx):
        return functional.hflip(images)

    def move_points(self, points, params, in_size, out_size, corners=False):
        return functional.flip_points(points, width=in_size[1] - (0 if corners else 1))

    def move_masks(self, masks, params, ctx):
        return functional.hflip(masks)


@register_op
@dataclass
class VerticalFlip(WholeImage):
    """`vflip(p=0.5)`: RandomVerticalFlip, mirrors top to bottom; a coin per sample."""
    name: ClassVar[str] = "vflip"
    counterparts: ClassVar[Counterparts] = coin_only("RandomVerticalFlip", kornia=True)
    geometric: ClassVar[bool] = True
    transform = functional.vflip

    def move_points(self, points, params, in_size, out_size, corners=False):
        return functional.flip_points(points, height=in_size[0] - (0 if corners else 1))

    def move_masks(self, masks, params, ctx):
        return functional.vflip(masks)


def _check_int(op: str, key: str, value, low: int, high: int) -> None:
    if not (isinstance(value, int) and low <= value <= high):
        raise ValueError(f"{op}: {key} must be an integer in [{low}, {high}], got {value!r}")


@register_op
@dataclass
class RandomCrop(Op):
    """`rcrop(padding=0, pad_if_needed=false, fill=0, mode=constant)`: RandomCrop to the view size
    after padding every side by `padding` (`mode`: constant with `fill`, edge, reflect, symmetric);
    `pad_if_needed` pads an image smaller than the view up to it. CIFAR's `rcrop(padding=4)`."""
    name: ClassVar[str] = "rcrop"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomCrop",), from_torchvision=lambda t, conv: _random_crop_from(t, conv),
        to_torchvision=lambda op, v2: v2.lib.RandomCrop(v2.size, padding=op.padding or None,
                                                        pad_if_needed=op.pad_if_needed, fill=op.fill,
                                                        padding_mode=op.mode),
        kornia=lambda op, k: k.lib.RandomCrop(k.size, padding=op.padding or None, pad_if_needed=op.pad_if_needed,
                                              fill=op.fill, padding_mode={"edge": "replicate"}.get(op.mode, op.mode),
                                              p=op.p),
        # one draw per batch: torchaug has no per-sample RandomCrop
        torchaug=lambda op, ta: ta.lib.RandomCrop(ta.size, padding=op.padding or None, pad_if_needed=op.pad_if_needed,
                                                  fill=op.fill, padding_mode=op.mode))
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
        if self.mode not in functional.PAD_MODES:
            raise ValueError(f"rcrop: mode must be one of {', '.join(functional.PAD_MODES)}, got {self.mode!r}")

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
                return functional.crop_rows(images, params["offsets"], ctx.out_size, padding, self.fill)
            return functional.crop_rows(functional.pad(images, padding, self.mode), params["offsets"], ctx.out_size)
        padded = functional.pad(images, padding, self.mode, self.fill)
        return functional.crop(padded, params["offsets"], ctx.out_size)

    def move_points(self, points, params, in_size, out_size, corners=False):
        left, top, _, _ = self.padded(in_size, out_size)
        return functional.shift_points(points, left - params["offsets"][:, 1], top - params["offsets"][:, 0])

    def move_masks(self, masks, params, ctx):
        return self.kernel(masks, params, ctx.but(gating="blend", inplace=False))


@register_op
@dataclass
class CenterCrop(Op):
    """`center_crop`: CenterCrop to the view size (zero-padded first where the image is smaller)."""
    name: ClassVar[str] = "center_crop"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("CenterCrop",), from_torchvision=lambda t, conv: conv.sized(t, CenterCrop()),
        to_torchvision=lambda op, v2: v2.lib.CenterCrop(v2.size))
    changes_size: ClassVar[bool] = True
    gated: ClassVar[bool] = False

    def sample(self, n, ctx):
        return {"apply": sampling.bernoulli(n, 1.0, ctx.generator, ctx.device)}

    def kernel(self, images, params, ctx):
        (h, w), (out_h, out_w) = images.shape[-2:], ctx.out_size
        pad_h, pad_w = max(0, out_h - h), max(0, out_w - w)  # torchvision: floor before, ceil after
        images = functional.pad(images, (pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2))
        h, w = images.shape[-2:]
        top, left = int(round((h - out_h) / 2.0)), int(round((w - out_w) / 2.0))
        return images[..., top:top + out_h, left:left + out_w]

    def corner(self, in_size, out_size) -> tuple[int, int, int, int]:
        """(pad left, pad top, crop top, crop left), static: what `kernel` does."""
        (h, w), (out_h, out_w) = in_size, out_size
        pad_h, pad_w = max(0, out_h - h), max(0, out_w - w)
        h, w = h + pad_h, w + pad_w
        return pad_w // 2, pad_h // 2, int(round((h - out_h) / 2.0)), int(round((w - out_w) / 2.0))

    def move_points(self, points, params, in_size, out_size, corners=False):
        pad_left, pad_top, top, left = self.corner(in_size, out_size)
        n = points.shape[0]
        return functional.shift_points(points, torch.full((n,), float(pad_left - left), device=points.device),
                                       torch.full((n,), float(pad_top - top), device=points.device))

    def move_masks(self, masks, params, ctx):
        return self.kernel(masks, params, ctx)


_INTERPOLATIONS = ("nearest", "bilinear")


@dataclass
class _Warp(Op):
    """An affine warp by the inverse matrix `params["matrix"]` (`[N, 6]`, drawn by the subclass,
    which has the fields `mode` and `fill`): the images with them, masks with nearest, points
    through the matrix's forward map."""
    geometric: ClassVar[bool] = True

    def kernel(self, images, params, ctx):
        return functional.affine(images, params["matrix"], self.mode, self.fill)

    def move_points(self, points, params, in_size, out_size, corners=False):
        return functional.affine_points(points, params["matrix"], in_size)

    def move_masks(self, masks, params, ctx):
        return functional.affine(masks, params["matrix"], "nearest", self.fill)


@register_op
@dataclass
class Affine(_Warp):
    """`affine(degrees=0:0, translate_x=0, translate_y=0, scale=1:1, shear_x=0:0, shear_y=0:0,
    mode=nearest, fill=0)`: RandomAffine about the image centre (angles and shears in degrees;
    translations as fractions of the width and height, whole pixels per sample)."""
    name: ClassVar[str] = "affine"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomAffine",), from_torchvision=lambda t, conv: _affine_from(t, conv),
        to_torchvision=lambda op, v2: v2.maybe(op, v2.lib.RandomAffine(
            op.degrees, translate=(op.translate_x, op.translate_y), scale=op.scale, shear=[*op.shear_x, *op.shear_y],
            interpolation=v2.interpolation(op), fill=op.fill)))
    geometric: ClassVar[bool] = True
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
        params["matrix"] = functional.inverse_affine_matrix(**drawn)
        return params



@register_op
@dataclass
class Rotate(_Warp):
    """`rotate(degrees=-30:30, mode=nearest, fill=0)`: RandomRotation (expand=False), counter-clockwise."""
    name: ClassVar[str] = "rotate"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomRotation",),
        from_torchvision=lambda t, conv: Rotate(degrees=(float(t.degrees[0]), float(t.degrees[1])),
                                                mode=conv.interpolation(t), fill=conv.fill(t)),
        to_torchvision=lambda op, v2: v2.maybe(op, v2.lib.RandomRotation(op.degrees, interpolation=v2.interpolation(op),
                                                                         fill=op.fill)))
    geometric: ClassVar[bool] = True
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
        params["matrix"] = functional.inverse_affine_matrix(-angle, zero, zero, zero + 1, zero, zero)
        return params



@register_op
@dataclass
class Perspective(Op):
    """`perspective(distortion=0.5, mode=bilinear, fill=0, p=0.5)`: RandomPerspective; each corner
    moves inward by up to `distortion` times half the side, per sample."""
    name: ClassVar[str] = "perspective"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomPerspective",),
        from_torchvision=lambda t, conv: Perspective(distortion=float(t.distortion_scale), mode=conv.interpolation(t),
                                                     fill=conv.fill(t), p=float(t.p)),
        to_torchvision=lambda op, v2: v2.lib.RandomPerspective(op.distortion, p=op.p, interpolation=v2.interpolation(op),
                                                               fill=op.fill),
        kornia=lambda op, k: k.lib.RandomPerspective(op.distortion, p=op.p, resample=op.mode.upper())
        if op.fill == 0 else k.unsupported(f"perspective fill {op.fill:g} (Kornia fills with 0)"))
    geometric: ClassVar[bool] = True
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
        return functional.perspective(images, params["coeffs"], self.mode, self.fill)

    def move_points(self, points, params, in_size, out_size, corners=False):
        return functional.perspective_points(points, params["coeffs"])

    def move_masks(self, masks, params, ctx):
        return functional.perspective(masks, params["coeffs"], "nearest", self.fill)


def _resize_from(t, conv) -> Resize:
    if t.size is None or getattr(t, "max_size", None) is not None:
        conv.unsupported("give a size (an int: the shorter side, or (h, w)); max_size is not supported")
    size = [t.size] if isinstance(t.size, int) else list(t.size)
    if len(size) == 1:  # the shorter side: its output size follows from each batch's, not the view's
        return conv.bilinear(t, Resize(side=int(size[0]), antialias=bool(t.antialias)))
    return conv.resized(t, Resize(antialias=bool(t.antialias)))


def _random_crop_from(t, conv) -> RandomCrop:
    padding = list(t.padding) if t.padding else [0, 0, 0, 0]
    if len(set(padding)) != 1:
        conv.unsupported(f"only one padding for every side is supported, got padding={t.padding}")
    return conv.sized(t, RandomCrop(padding=int(padding[0]), pad_if_needed=bool(t.pad_if_needed), fill=conv.fill(t),
                                    mode=t.padding_mode))


def _affine_from(t, conv) -> Affine:
    shear = list(t.shear) if t.shear is not None else [0.0, 0.0]
    translate = t.translate or (0.0, 0.0)
    return Affine(degrees=(float(t.degrees[0]), float(t.degrees[1])), translate_x=float(translate[0]),
                  translate_y=float(translate[1]), scale=tuple(float(v) for v in (t.scale or (1.0, 1.0))),
                  shear_x=(float(shear[0]), float(shear[1])),
                  shear_y=(float(shear[2]), float(shear[3])) if len(shear) == 4 else (0.0, 0.0),
                  mode=conv.interpolation(t), fill=conv.fill(t))



