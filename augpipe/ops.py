"""Augmentation ops: each one is a sampler (`augpipe.sampling`) plus a kernel (`augpipe.kernels`).

An op is a small dataclass holding its probability and parameter ranges, and nothing else:
- `sample(n, ctx)` draws every per-sample parameter as `[N, ...]` tensors on `ctx.device` (always a
  bool `apply` mask), from the generator in `ctx`, without reading anything back to the host;
- `kernel(images, params, size, inplace)` is a pure function of the images and those parameters
  that transforms *every* row, with output shapes fixed by `size` (the view's output size).
Which rows keep the kernel's result is the policy's job (`augpipe.policy`: a masked blend or row
subsets). `gated=False` ops apply their mask themselves (crops: the full box; noise: std 0).
Ops are registered by the name used in spec strings (`OPS`): presets, the parser and the CLI
share one table.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from augpipe import cpu, kernels, sampling

Range = tuple[float, float]
Size = tuple[int, int]

NORMALIZE_STATS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


@dataclass(frozen=True)
class SampleContext:
    """What a sampler needs besides its own ranges (all static: no tensor is read)."""
    generator: torch.Generator | None
    device: torch.device
    in_size: Size   # (H, W) of the images entering the op
    out_size: Size  # (h, w) of the view


@dataclass
class Op:
    """Base class: probability `p` and the spec-string metadata."""
    name: ClassVar[str] = ""
    positional: ClassVar[tuple[str, ...]] = ()  # argument names accepted without `key=`
    changes_size: ClassVar[bool] = False
    gated: ClassVar[bool] = True  # the policy keeps the kernel's result only where `apply` is set
    p: float = 1.0

    def sample(self, n: int, ctx: SampleContext) -> dict[str, torch.Tensor]:
        return {"apply": sampling.bernoulli(n, self.p, ctx.generator, ctx.device)}

    def kernel(self, images: torch.Tensor, params: dict[str, torch.Tensor], size: Size,
               inplace: bool) -> torch.Tensor:
        """Transform every row; `inplace=True` allows writing into `images`."""
        raise NotImplementedError

    def validate(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"{self.name}: p must be in [0, 1], got {self.p}")


def _check_range(op: str, key: str, value: Range, low: float, high: float = float("inf")) -> None:
    if not (low <= value[0] <= value[1] <= high):
        raise ValueError(f"{op}: {key} must satisfy {low} <= lo <= hi <= {high}, got {value[0]}:{value[1]}")


@dataclass
class RandomResizedCrop(Op):
    """`rrc(scale=0.08:1, ratio=0.75:1.333)`: torchvision's RandomResizedCrop, per-sample boxes.

    With p < 1, the samples not cropped are resized whole.
    """
    name: ClassVar[str] = "rrc"
    positional: ClassVar[tuple[str, ...]] = ("scale", "ratio")
    changes_size: ClassVar[bool] = True
    gated: ClassVar[bool] = False
    scale: Range = (0.08, 1.0)
    ratio: Range = (3.0 / 4.0, 4.0 / 3.0)

    def validate(self) -> None:
        super().validate()
        _check_range(self.name, "scale", self.scale, 1e-6, 1.0)
        _check_range(self.name, "ratio", self.ratio, 1e-6)

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        h, w = ctx.in_size
        boxes = sampling.resized_crop_boxes(n, h, w, self.scale, self.ratio, ctx.generator, ctx.device)
        if self.p < 1.0:
            boxes = torch.where(params["apply"][:, None], boxes, sampling.full_boxes(n, h, w, ctx.device))
        params["boxes"] = boxes
        return params

    def kernel(self, images, params, size, inplace):
        return kernels.resized_crop(images, params["boxes"], size)


@dataclass
class Resize(Op):
    """`resize`: the whole image resized to the view size (implied when a view has no crop)."""
    name: ClassVar[str] = "resize"
    changes_size: ClassVar[bool] = True
    gated: ClassVar[bool] = False

    def sample(self, n, ctx):
        h, w = ctx.in_size
        return {"apply": sampling.bernoulli(n, 1.0, ctx.generator, ctx.device),
                "boxes": sampling.full_boxes(n, h, w, ctx.device)}

    def kernel(self, images, params, size, inplace):
        if tuple(images.shape[-2:]) == tuple(size):  # static shapes: no tensor is read
            return images
        return kernels.resized_crop(images, params["boxes"], size)


@dataclass
class HorizontalFlip(Op):
    """`flip(p=0.5)`."""
    name: ClassVar[str] = "flip"
    positional: ClassVar[tuple[str, ...]] = ("p",)
    p: float = 0.5

    def kernel(self, images, params, size, inplace):
        return kernels.hflip(images)


@dataclass
class ColorJitter(Op):
    """`jitter(brightness, contrast, saturation, hue, p=0.8)`: torchvision's ColorJitter.

    Factors: brightness, contrast, saturation ~ U(max(0, 1-s), 1+s); hue ~ U(-h, h) turns.
    The four adjustments run in a random order drawn per sample (torchvision draws one order per
    call). A zero strength skips that adjustment, as torchvision does (factor 1 is an exact
    identity in the fused kernel; a zero hue strength removes the hue pass).
    """
    name: ClassVar[str] = "jitter"
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

    def kernel(self, images, params, size, inplace):
        return kernels.color_jitter(images, params["factors"], params["order"], use_hue=self.hue > 0,
                                    inplace=inplace, hue_kernel=cpu.hue_kernel(images))


@dataclass
class Grayscale(Op):
    """`gray(p=0.2)`: RandomGrayscale (3 output channels)."""
    name: ClassVar[str] = "gray"
    positional: ClassVar[tuple[str, ...]] = ("p",)
    p: float = 0.2

    def kernel(self, images, params, size, inplace):
        return kernels.grayscale(images, inplace=inplace)


@dataclass
class GaussianBlur(Op):
    """`blur(sigma=0.1:2, k=0, p=0.5)`: per-sample sigma ~ U(sigma); k=0 means 10% of the view
    size rounded to odd (the SimCLR rule: 23 taps at 224 px)."""
    name: ClassVar[str] = "blur"
    positional: ClassVar[tuple[str, ...]] = ("p",)
    sigma: Range = (0.1, 2.0)
    k: int = 0
    p: float = 0.5

    def validate(self) -> None:
        super().validate()
        _check_range(self.name, "sigma", self.sigma, 1e-6)
        if self.k < 0 or (self.k and self.k % 2 == 0):
            raise ValueError(f"blur: k must be 0 (auto) or a positive odd integer, got {self.k}")

    def kernel_size(self, out_size: Size) -> int:
        if self.k:
            return self.k
        k = max(3, int(0.1 * min(out_size)))
        return k if k % 2 else k + 1

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        params["sigma"] = sampling.uniform(n, *self.sigma, ctx.generator, ctx.device)
        return params

    def kernel(self, images, params, size, inplace):
        k = self.kernel_size(tuple(images.shape[-2:]))
        # reflect padding needs k//2 < the image side
        k = min(k, 2 * (min(images.shape[-2:]) // 2) - 1)
        return kernels.gaussian_blur(images, params["sigma"], k)


@dataclass
class Solarize(Op):
    """`solarize(p=0.2, threshold=0.5)`."""
    name: ClassVar[str] = "solarize"
    positional: ClassVar[tuple[str, ...]] = ("p",)
    threshold: float = 0.5
    p: float = 0.2

    def kernel(self, images, params, size, inplace):
        return kernels.solarize(images, self.threshold, inplace=inplace)


@dataclass
class GaussianNoise(Op):
    """`noise(std=0.1)` or `noise(std=0.05:0.2)`: additive N(0, std^2) per pixel, std per sample
    (fixed or ~ U(lo, hi)), clipped to [0, 1]. Two views of the same image get independent noise.

    The standard normal draw is a sampled parameter (`noise`, the size of the images at the op),
    drawn from the policy's generator like every other parameter: the kernel stays pure and
    nothing is read back to the host. A sample not selected gets std 0 (an exact identity).
    """
    name: ClassVar[str] = "noise"
    positional: ClassVar[tuple[str, ...]] = ("std", "p")
    gated: ClassVar[bool] = False
    std: Range = (0.1, 0.1)

    def validate(self) -> None:
        super().validate()
        _check_range(self.name, "std", self.std, 0.0)

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        std = sampling.uniform(n, *self.std, ctx.generator, ctx.device)
        params["std"] = std if self.p >= 1.0 else torch.where(params["apply"], std, 0.0)
        params["noise"] = sampling.normal((n, 3, *ctx.in_size), ctx.generator, ctx.device)
        return params

    def kernel(self, images, params, size, inplace):
        return kernels.gaussian_noise(images, params["std"], params["noise"])


@dataclass
class Normalize(Op):
    """`normalize(stats=imagenet)`: per-channel standardisation (also `cifar10`)."""
    name: ClassVar[str] = "normalize"
    positional: ClassVar[tuple[str, ...]] = ("stats",)
    gated: ClassVar[bool] = False
    stats: str = "imagenet"

    def validate(self) -> None:
        if self.stats not in NORMALIZE_STATS:
            raise ValueError(f"normalize: stats must be one of {sorted(NORMALIZE_STATS)}, got {self.stats!r}")

    def sample(self, n, ctx):
        return {}

    def kernel(self, images, params, size, inplace):
        mean, std = NORMALIZE_STATS[self.stats]
        return kernels.normalize(images, mean, std)


@dataclass
class Identity(Op):
    """`identity`: leaves the images as they are."""
    name: ClassVar[str] = "identity"
    gated: ClassVar[bool] = False

    def sample(self, n, ctx):
        return {}

    def kernel(self, images, params, size, inplace):
        return images


OPS: dict[str, type[Op]] = {cls.name: cls for cls in (
    RandomResizedCrop, Resize, HorizontalFlip, ColorJitter, Grayscale, GaussianBlur, Solarize,
    GaussianNoise, Normalize, Identity)}


def op_fields(cls: type[Op]) -> dict[str, object]:
    """Argument name -> default value, for error messages and the parser."""
    return {f.name: f.default for f in fields(cls)}
