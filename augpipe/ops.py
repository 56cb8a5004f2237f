"""The built-in ops: each one a sampler (`augpipe.sampling`) plus a kernel (`augpipe.kernels`),
registered by its spec-string name with `register_op`, exactly as a user's op is (the contract:
`augpipe.op`, docs/ARCHITECTURE.md).

Which rows keep a kernel's result is the policy's job (`augpipe.gating`: a masked blend or row
subsets). `gated=False` ops apply their mask themselves (crops: the full box; noise: std 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from augpipe import kernels, sampling
from augpipe.op import Op, Range, Size, check_range, register_op

NORMALIZE_STATS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


@register_op
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
        return kernels.resized_crop(images, params["boxes"], ctx.out_size)


@register_op
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

    def kernel(self, images, params, ctx):
        if tuple(images.shape[-2:]) == tuple(ctx.out_size):  # static shapes: no tensor is read
            return images
        return kernels.resized_crop(images, params["boxes"], ctx.out_size)


@register_op
@dataclass
class HorizontalFlip(Op):
    """`flip(p=0.5)`."""
    name: ClassVar[str] = "flip"
    positional: ClassVar[tuple[str, ...]] = ("p",)
    p: float = 0.5

    def kernel(self, images, params, ctx):
        return kernels.hflip(images)


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
        return kernels.color_jitter(images, params["factors"], params["order"], use_hue=self.hue > 0,
                                    inplace=ctx.inplace, hue_kernel=ctx.options.get("hue_kernel"))


@register_op
@dataclass
class Grayscale(Op):
    """`gray(p=0.2)`: RandomGrayscale (3 output channels)."""
    name: ClassVar[str] = "gray"
    positional: ClassVar[tuple[str, ...]] = ("p",)
    p: float = 0.2

    def kernel(self, images, params, ctx):
        return kernels.grayscale(images, inplace=ctx.inplace)


@register_op
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
        check_range(self.name, "sigma", self.sigma, 1e-6)
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

    def kernel(self, images, params, ctx):
        k = self.kernel_size(tuple(images.shape[-2:]))
        # reflect padding needs k//2 < the image side
        k = min(k, 2 * (min(images.shape[-2:]) // 2) - 1)
        return kernels.gaussian_blur(images, params["sigma"], k)


@register_op
@dataclass
class Solarize(Op):
    """`solarize(p=0.2, threshold=0.5)`."""
    name: ClassVar[str] = "solarize"
    positional: ClassVar[tuple[str, ...]] = ("p",)
    threshold: float = 0.5
    p: float = 0.2

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.threshold <= 1.0:  # images are in [0, 1]: above 1 nothing is inverted
            raise ValueError(f"solarize: threshold must be in [0, 1] (the images' scale), got {self.threshold:g}")

    def kernel(self, images, params, ctx):
        return kernels.solarize(images, self.threshold, inplace=ctx.inplace)


@register_op
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
        check_range(self.name, "std", self.std, 0.0)

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        std = sampling.uniform(n, *self.std, ctx.generator, ctx.device)
        params["std"] = std if self.p >= 1.0 else torch.where(params["apply"], std, 0.0)
        params["noise"] = sampling.normal((n, 3, *ctx.in_size), ctx.generator, ctx.device)
        return params

    def kernel(self, images, params, ctx):
        return kernels.gaussian_noise(images, params["std"], params["noise"])


@register_op
@dataclass
class Normalize(Op):
    """`normalize(stats=imagenet)`: per-channel standardisation; `stats` is a name (`imagenet`,
    `cifar10`) or explicit `MEAN:STD`, each three numbers `r/g/b` (`normalize(stats=0.5/0.5/0.5:0.25/0.25/0.25)`)."""
    name: ClassVar[str] = "normalize"
    positional: ClassVar[tuple[str, ...]] = ("stats",)
    gated: ClassVar[bool] = False
    stats: str = "imagenet"

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.stats in NORMALIZE_STATS:
            return NORMALIZE_STATS[self.stats]
        try:
            mean, std = (tuple(float(v) for v in part.split("/")) for part in self.stats.split(":"))
        except ValueError:
            raise ValueError(f"normalize: stats must be one of {sorted(NORMALIZE_STATS)} or MEAN:STD as r/g/b:r/g/b, "
                             f"got {self.stats!r}") from None
        if len(mean) != 3 or len(std) != 3 or not all(s > 0 for s in std):
            raise ValueError(f"normalize: MEAN:STD needs three means and three positive stds, got {self.stats!r}")
        return mean, std

    def validate(self) -> None:
        self.mean_std()

    def sample(self, n, ctx):
        return {}

    def kernel(self, images, params, ctx):
        mean, std = self.mean_std()
        return kernels.normalize(images, self.constant(mean, images), self.constant(std, images))


@register_op
@dataclass
class Identity(Op):
    """`identity`: leaves the images as they are."""
    name: ClassVar[str] = "identity"
    gated: ClassVar[bool] = False

    def sample(self, n, ctx):
        return {}

    def kernel(self, images, params, ctx):
        return images
