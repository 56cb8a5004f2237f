"""Colour ops: jitter, grayscale, solarize, invert, posterize, sharpness, autocontrast, equalize and
channel permutation, each a sampler plus a kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from augpipe import functional, sampling
from augpipe.ops._base import Counterparts, Op, Range, WholeImage, check_range, coin_only, register_op


@register_op
@dataclass
class ColorJitter(Op):
    """`jitter(brightness, contrast, saturation, hue, p=0.8)`: torchvision's ColorJitter.

    Factors: brightness, contrast, saturation ~ U(max(0, 1-s), 1+s); hue ~ U(-h, h) turns.
    The four adjustments run in a random order drawn per sample (torchvision draws one order per
    call). A zero strength skips that adjustment, as torchvision does (factor 1 is an exact
    identity in the fused kernel; a zero hue strength removes the hue pass).
    """
    name: ClassVar[str] = "jitter"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("ColorJitter",), from_torchvision=lambda t, conv: _jitter_from(t, conv),
        to_torchvision=lambda op, v2: v2.lib.RandomApply(
            [v2.lib.ColorJitter(op.brightness, op.contrast, op.saturation, op.hue)], p=op.p),
        kornia=lambda op, k: k.lib.ColorJitter(op.brightness, op.contrast, op.saturation, op.hue, p=op.p),
        torchaug=lambda op, ta: ta.lib.RandomColorJitter(op.brightness, op.contrast, op.saturation, op.hue, p=op.p,
                                                         num_chunks=ta.batch, batch_transform=True),
        dali=lambda op, d: _dali_jitter(op, d), dali_uint8=True)
    positional: ClassVar[tuple[str, ...]] = ("brightness", "contrast", "saturation", "hue", "p")
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    p: float = 0.8

    def validate(self) -> None:
        super().validate()
        for key in ("brightness", "contrast", "saturation"):
            if getattr(self, key) < 0:
                raise ValueError(f"jitter: {key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"jitter: hue must be in [0, 0.5], got {self.hue}")

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        g, dev = ctx.generator, ctx.device
        cols = [sampling.uniform(n, max(0.0, 1.0 - s), 1.0 + s, g, dev) if s > 0 else torch.ones(n, device=dev)
                for s in (self.brightness, self.contrast, self.saturation)]
        cols.append(sampling.uniform(n, -self.hue, self.hue, g, dev))
        params["factors"] = torch.stack(cols, dim=1)
        params["order"] = sampling.permutations(n, 4, g, dev)
        return params

    def kernel(self, images, params, ctx):
        return functional.color_jitter(images, params["factors"], params["order"], use_hue=self.hue > 0,
                                    inplace=ctx.inplace, hue_kernel=ctx.options.get("hue_kernel"))


@register_op
@dataclass
class Grayscale(Op):
    """`gray(p=0.2)`: RandomGrayscale (3 output channels)."""
    name: ClassVar[str] = "gray"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomGrayscale", "Grayscale"), from_torchvision=lambda t, conv: _grayscale_from(t, conv),
        to_torchvision=lambda op, v2: v2.lib.RandomGrayscale(p=op.p),
        kornia=lambda op, k: k.lib.RandomGrayscale(p=op.p),
        torchaug=lambda op, ta: ta.lib.RandomGrayscale(p=op.p, batch_transform=True),
        dali=lambda op, d: d.when(op.p, lambda x: d.lib.color_twist(x, saturation=0.0)), dali_uint8=True)
    positional: ClassVar[tuple[str, ...]] = ("p",)
    p: float = 0.2

    def kernel(self, images, params, ctx):
        return functional.grayscale(images, inplace=ctx.inplace)


@register_op
@dataclass
class Solarize(Op):
    """`solarize(p=0.2, threshold=0.5)`: RandomSolarize, inverts the pixels at or above `threshold` (on [0, 1])."""
    name: ClassVar[str] = "solarize"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomSolarize",), from_torchvision=lambda t, conv: _solarize_from(t, conv),
        to_torchvision=lambda op, v2: v2.lib.RandomSolarize(threshold=op.threshold, p=op.p),
        # Kornia draws the threshold around 0.5 (+- thresholds); 0 spread = fixed 0.5
        kornia=lambda op, k: k.lib.RandomSolarize(thresholds=0.0, additions=0.0, p=op.p)
        if op.threshold == 0.5 else k.unsupported("solarize threshold other than 0.5"),
        torchaug=lambda op, ta: ta.lib.RandomSolarize(threshold=op.threshold, p=op.p, batch_transform=True),
        dali=lambda op, d: d.when(op.p, lambda x: x + (x >= op.threshold) * (1.0 - 2.0 * x)))
    positional: ClassVar[tuple[str, ...]] = ("p",)
    threshold: float = 0.5
    p: float = 0.2

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.threshold <= 1.0:  # images are in [0, 1]: above 1 nothing is inverted
            raise ValueError(f"solarize: threshold must be in [0, 1] (the images' scale), got {self.threshold:g}")

    def kernel(self, images, params, ctx):
        return functional.solarize(images, self.threshold, inplace=ctx.inplace)


@register_op
@dataclass
class Invert(WholeImage):
    """`invert(p=0.5)`: RandomInvert, each pixel `1 - x`."""
    name: ClassVar[str] = "invert"
    counterparts: ClassVar[Counterparts] = coin_only("RandomInvert")
    transform = functional.invert


@register_op
@dataclass
class ChannelPermutation(Op):
    """`channel_permutation`: RandomChannelPermutation, one random order of the channels per sample."""
    name: ClassVar[str] = "channel_permutation"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomChannelPermutation",), from_torchvision=lambda t, conv: ChannelPermutation(p=1.0),
        to_torchvision=lambda op, v2: v2.maybe(op, v2.lib.RandomChannelPermutation()))
    positional: ClassVar[tuple[str, ...]] = ("p",)

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        params["order"] = sampling.permutations(n, 3, ctx.generator, ctx.device)
        return params

    def kernel(self, images, params, ctx):
        return functional.permute_channels(images, params["order"])


@register_op
@dataclass
class Posterize(Op):
    """`posterize(bits=4, p=0.5)`: RandomPosterize; `bits=LO:HI` draws an integer per sample."""
    name: ClassVar[str] = "posterize"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomPosterize",),
        from_torchvision=lambda t, conv: Posterize(bits=(float(t.bits), float(t.bits)), p=t.p),
        to_torchvision=lambda op, v2: v2.lib.RandomPosterize(int(v2.fixed(op, "bits")), p=op.p))
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
        return functional.posterize(images, params["bits"])


@register_op
@dataclass
class Sharpness(Op):
    """`sharpness(factor=2, p=0.5)`: RandomAdjustSharpness (`factor=LO:HI` draws one per sample)."""
    name: ClassVar[str] = "sharpness"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomAdjustSharpness",),
        from_torchvision=lambda t, conv: Sharpness(factor=(float(t.sharpness_factor),) * 2, p=t.p),
        to_torchvision=lambda op, v2: v2.lib.RandomAdjustSharpness(v2.fixed(op, "factor"), p=op.p))
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
        return functional.adjust_sharpness(images, params["factor"])


@register_op
@dataclass
class Autocontrast(WholeImage):
    """`autocontrast(p=0.5)`: RandomAutocontrast, stretches each channel to its full range."""
    name: ClassVar[str] = "autocontrast"
    counterparts: ClassVar[Counterparts] = coin_only("RandomAutocontrast")
    transform = functional.autocontrast


@register_op
@dataclass
class Equalize(WholeImage):
    """`equalize(p=0.5)`: RandomEqualize (per channel, on 256 levels, as torchvision)."""
    name: ClassVar[str] = "equalize"
    counterparts: ClassVar[Counterparts] = coin_only("RandomEqualize")
    transform = functional.equalize


def _jitter_from(t, conv) -> ColorJitter:
    """torchvision's ranges as strengths: (max(0, 1-s), 1+s) for brightness, contrast and
    saturation, (-h, h) for hue; other ranges have no op."""
    strengths = []
    for key in ("brightness", "contrast", "saturation"):
        value = getattr(t, key)
        strength = 0.0 if value is None else value[1] - 1.0
        if value is not None and abs(value[0] - max(0.0, 1.0 - strength)) > 1e-9:
            conv.unsupported(f"{key}={tuple(value)} is not (max(0, 1-s), 1+s); only a strength s is supported")
        strengths.append(strength)
    hue = 0.0 if t.hue is None else t.hue[1]
    if t.hue is not None and abs(t.hue[0] + hue) > 1e-9:
        conv.unsupported(f"hue={tuple(t.hue)} is not (-h, h)")
    return ColorJitter(brightness=strengths[0], contrast=strengths[1], saturation=strengths[2], hue=hue, p=1.0)


def _grayscale_from(t, conv) -> Grayscale:
    if getattr(t, "num_output_channels", 3) != 3:
        conv.unsupported("only num_output_channels=3 is supported")
    return Grayscale(p=getattr(t, "p", 1.0))


def _solarize_from(t, conv) -> Solarize:
    return Solarize(threshold=conv.to_unit(t.threshold, "threshold"), p=t.p)


def _dali_jitter(op: ColorJitter, d):
    """DALI's color_twist with torchvision's factor ranges (hue in degrees), under the op's coin."""
    def factor(s):
        return d.uniform(max(0.0, 1 - s), 1 + s)
    return d.when(op.p, lambda x: d.lib.color_twist(x, brightness=factor(op.brightness), contrast=factor(op.contrast),
                                                    saturation=factor(op.saturation),
                                                    hue=d.uniform(-360.0 * op.hue, 360.0 * op.hue)))
