"""Augmentation ops: each one pairs a sampler (`augpipe.sampling`) with a kernel (`augpipe.kernels`).

An op is a small dataclass holding its probability and parameter ranges. `sample(n, ctx)` draws a
dict of `[N, ...]` tensors (always with a bool `apply` mask); `apply(images, params)` runs the
kernel on the samples whose mask is set and leaves the others untouched. Ops are registered by
the name used in spec strings (`OPS`), so presets, the spec parser and the CLI share one table.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, ClassVar

import torch

from augpipe import kernels, sampling

Range = tuple[float, float]

NORMALIZE_STATS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


@dataclass(frozen=True)
class SampleContext:
    """What a sampler needs besides its own ranges."""
    generator: torch.Generator | None
    device: torch.device
    in_size: tuple[int, int]   # (H, W) of the images entering the view
    out_size: tuple[int, int]  # (h, w) of the view


def _subset(images: torch.Tensor, mask: torch.Tensor, params: dict[str, torch.Tensor],
            fn: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]) -> torch.Tensor:
    """Run `fn` only on the samples whose `mask` is set; write the results back in place.

    Working on the selected rows alone (instead of computing every sample and selecting with
    `torch.where`) is what makes a p=0.2 op cost about a fifth of a p=1 op.
    """
    idx = mask.nonzero().squeeze(1)
    count = idx.numel()
    if count == 0:
        return images
    if count == images.shape[0]:
        return fn(images, params)
    sub = {k: v.index_select(0, idx) for k, v in params.items()}
    return images.index_copy_(0, idx, fn(images.index_select(0, idx), sub))


@dataclass
class Op:
    """Base class: probability `p` and the spec-string metadata."""
    name: ClassVar[str] = ""
    positional: ClassVar[tuple[str, ...]] = ()  # argument names accepted without `key=`
    changes_size: ClassVar[bool] = False
    inplace: ClassVar[bool] = True  # may write into its input (the policy hands it an owned tensor)
    p: float = 1.0

    def sample(self, n: int, ctx: SampleContext) -> dict[str, torch.Tensor]:
        return {"apply": sampling.bernoulli(n, self.p, ctx.generator, ctx.device)}

    def kernel(self, images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def apply(self, images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        per_sample = {k: v for k, v in params.items() if k != "apply"}
        return _subset(images, params["apply"], per_sample, self.kernel)

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
    inplace: ClassVar[bool] = False
    name: ClassVar[str] = "rrc"
    positional: ClassVar[tuple[str, ...]] = ("scale", "ratio")
    changes_size: ClassVar[bool] = True
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
        full = sampling.full_boxes(n, h, w, ctx.device)
        params["boxes"] = torch.where(params["apply"][:, None], boxes, full)
        params["size"] = torch.tensor(ctx.out_size, device=ctx.device).expand(n, 2)
        return params

    def apply(self, images, params):
        size = tuple(int(s) for s in params["size"][0].tolist())
        return kernels.resized_crop(images, params["boxes"], size)


@dataclass
class Resize(Op):
    """`resize`: the whole image resized to the view size (implied when a view has no crop)."""
    inplace: ClassVar[bool] = False
    name: ClassVar[str] = "resize"
    changes_size: ClassVar[bool] = True

    def sample(self, n, ctx):
        h, w = ctx.in_size
        return {"apply": sampling.bernoulli(n, 1.0, ctx.generator, ctx.device),
                "boxes": sampling.full_boxes(n, h, w, ctx.device),
                "size": torch.tensor(ctx.out_size, device=ctx.device).expand(n, 2)}

    def apply(self, images, params):
        size = tuple(int(s) for s in params["size"][0].tolist())
        if tuple(images.shape[-2:]) == size:
            return images
        return kernels.resized_crop(images, params["boxes"], size)


@dataclass
class HorizontalFlip(Op):
    """`flip(p=0.5)`."""
    name: ClassVar[str] = "flip"
    positional: ClassVar[tuple[str, ...]] = ("p",)
    p: float = 0.5

    def kernel(self, images, params):
        return kernels.hflip(images)


@dataclass
class ColorJitter(Op):
    """`jitter(brightness, contrast, saturation, hue, p=0.8)`: torchvision's ColorJitter.

    Factors: brightness, contrast, saturation ~ U(max(0, 1-s), 1+s); hue ~ U(-h, h) turns.
    The four adjustments run in a random order drawn per sample. A zero strength skips that
    adjustment entirely, as torchvision does.
    """
    name: ClassVar[str] = "jitter"
    positional: ClassVar[tuple[str, ...]] = ("brightness", "contrast", "saturation", "hue", "p")
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    p: float = 0.8

    _KERNELS: ClassVar[tuple] = (kernels.brightness, kernels.contrast, kernels.saturation, kernels.hue)
    # the policy hands ops a tensor they own, and _subset hands kernels a fresh selection

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
        cols = [sampling.uniform(n, max(0.0, 1.0 - s), 1.0 + s, g, dev)
                for s in (self.brightness, self.contrast, self.saturation)]
        cols.append(sampling.uniform(n, -self.hue, self.hue, g, dev))
        params["factors"] = torch.stack(cols, dim=1)
        params["order"] = sampling.permutations(n, 4, g, dev)
        return params

    def kernel(self, images, params):
        factors, order = params["factors"], params["order"]
        active = [j for j, s in enumerate((self.brightness, self.contrast, self.saturation, self.hue)) if s > 0]
        for step in range(4):
            for j in active:
                mask = order[:, step] == j
                images = _subset(images, mask, {"f": factors[:, j]},
                                 lambda x, q, j=j: self._KERNELS[j](x, q["f"], inplace=True))
        return images


@dataclass
class Grayscale(Op):
    """`gray(p=0.2)`: RandomGrayscale (3 output channels)."""
    name: ClassVar[str] = "gray"
    positional: ClassVar[tuple[str, ...]] = ("p",)
    p: float = 0.2

    def kernel(self, images, params):
        return kernels.grayscale(images, inplace=True)


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

    def kernel_size(self, out_size: tuple[int, int]) -> int:
        if self.k:
            return self.k
        k = max(3, int(0.1 * min(out_size)))
        return k if k % 2 else k + 1

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        params["sigma"] = sampling.uniform(n, *self.sigma, ctx.generator, ctx.device)
        return params

    def kernel(self, images, params):
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

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        params["threshold"] = torch.full((n,), self.threshold, device=ctx.device)
        return params

    def kernel(self, images, params):
        return kernels.solarize(images, params["threshold"], inplace=True)


@dataclass
class GaussianNoise(Op):
    """`noise(std=0.1)` or `noise(std=0.05:0.2)`: additive N(0, std^2) per pixel, std per sample
    (fixed or ~ U(lo, hi)), clipped to [0, 1]. Two views of the same image get independent noise."""
    inplace: ClassVar[bool] = False
    name: ClassVar[str] = "noise"
    positional: ClassVar[tuple[str, ...]] = ("std", "p")
    std: Range = (0.1, 0.1)

    def validate(self) -> None:
        super().validate()
        _check_range(self.name, "std", self.std, 0.0)

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        params["std"] = sampling.uniform(n, *self.std, ctx.generator, ctx.device)
        # The noise itself is as large as the batch: the parameters keep only the seed it is
        # drawn from (from the policy's generator), so they stay small and still reproduce it.
        params["seed"] = sampling.seeds(n, ctx.generator, ctx.device)
        return params

    def apply(self, images, params):
        # row i's seed is base + i: a chunk of rows draws from its first row's seed
        noise = sampling.normal_from_seed(images, int(params["seed"][0]))
        std = torch.where(params["apply"], params["std"], torch.zeros_like(params["std"]))
        return kernels.gaussian_noise(images, std, noise)


@dataclass
class Normalize(Op):
    """`normalize(stats=imagenet)`: per-channel standardisation (also `cifar10`)."""
    inplace: ClassVar[bool] = False
    name: ClassVar[str] = "normalize"
    positional: ClassVar[tuple[str, ...]] = ("stats",)
    stats: str = "imagenet"

    def validate(self) -> None:
        if self.stats not in NORMALIZE_STATS:
            raise ValueError(f"normalize: stats must be one of {sorted(NORMALIZE_STATS)}, got {self.stats!r}")

    def apply(self, images, params):
        mean, std = NORMALIZE_STATS[self.stats]
        return kernels.normalize(images, torch.tensor(mean), torch.tensor(std))


@dataclass
class Identity(Op):
    """`identity`: leaves the images as they are."""
    inplace: ClassVar[bool] = False
    name: ClassVar[str] = "identity"

    def apply(self, images, params):
        return images


OPS: dict[str, type[Op]] = {cls.name: cls for cls in (
    RandomResizedCrop, Resize, HorizontalFlip, ColorJitter, Grayscale, GaussianBlur, Solarize,
    GaussianNoise, Normalize, Identity)}


def op_fields(cls: type[Op]) -> dict[str, object]:
    """Argument name -> default value, for error messages and the parser."""
    return {f.name: f.default for f in fields(cls)}
