"""Ops of no one kind: Gaussian blur, Gaussian noise (the noise-only views), normalisation, identity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from augpipe import functional, sampling
from augpipe.ops._base import Counterparts, Op, Range, Size, check_range, register_op

NORMALIZE_STATS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


@register_op
@dataclass
class GaussianBlur(Op):
    """`blur(sigma=0.1:2, k=0, p=0.5)`: per-sample sigma ~ U(sigma); k=0 means 10% of the view
    size rounded to odd (the SimCLR rule: 23 taps at 224 px)."""
    name: ClassVar[str] = "blur"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("GaussianBlur",), from_torchvision=lambda t, conv: _blur_from(t, conv),
        to_torchvision=lambda op, v2: v2.lib.RandomApply(
            [v2.lib.GaussianBlur(op.kernel_size(v2.size), sigma=op.sigma)], p=op.p),
        kornia=lambda op, k: k.lib.RandomGaussianBlur((op.kernel_size(k.size),) * 2, op.sigma, p=op.p),
        torchaug=lambda op, ta: ta.lib.RandomGaussianBlur(op.kernel_size(ta.size), sigma=op.sigma, p=op.p,
                                                          batch_transform=True),
        dali=lambda op, d: d.when(op.p, lambda x: d.lib.gaussian_blur(x, window_size=op.kernel_size(d.size),
                                                                      sigma=d.uniform(*op.sigma))),
        dali_uint8=True)
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
        return functional.gaussian_blur(images, params["sigma"], k)


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
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("GaussianNoise",), from_torchvision=lambda t, conv: _noise_from(t, conv),
        to_torchvision=lambda op, v2: v2.lib.RandomApply([v2.lib.GaussianNoise(sigma=op.std[0], clip=True)], p=op.p)
        if op.std[0] == op.std[1] else v2.unsupported("noise with a std range (GaussianNoise's sigma is fixed)"),
        kornia=lambda op, k: k.lib.RandomGaussianNoise(std=op.std[0], p=op.p) if op.std[0] == op.std[1]
        else k.unsupported("noise with a std range (Kornia's std is fixed per call)"),
        torchaug=lambda op, ta: _torch_noise(op),
        dali=lambda op, d: d.when(op.p, lambda x: d.math.clamp(d.lib.noise.gaussian(x, stddev=d.uniform(*op.std)),
                                                               0.0, 1.0)))
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
        params["noise"] = sampling.normal((n * ctx.frames, 3, *ctx.in_size), ctx.generator, ctx.device)
        return params

    def frame_keys(self):
        return frozenset({"noise"})  # each frame of a clip its own noise, as torchvision's on a video

    def kernel(self, images, params, ctx):
        return functional.gaussian_noise(images, params["std"], params["noise"])


@register_op
@dataclass
class Normalize(Op):
    """`normalize(stats=imagenet)`: per-channel standardisation; `stats` is a name (`imagenet`,
    `cifar10`) or explicit `MEAN:STD`, each three numbers `r/g/b` (`normalize(stats=0.5/0.5/0.5:0.25/0.25/0.25)`)."""
    name: ClassVar[str] = "normalize"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("Normalize",), from_torchvision=lambda t, conv: _normalize_from(t),
        to_torchvision=lambda op, v2: v2.lib.Normalize(*op.mean_std()),
        kornia=lambda op, k: k.lib.Normalize(*(torch.tensor(v) for v in op.mean_std())),
        torchaug=lambda op, ta: ta.lib.Normalize(*op.mean_std()),
        dali=lambda op, d: lambda x: d.lib.crop_mirror_normalize(x, mean=list(op.mean_std()[0]),
                                                                 std=list(op.mean_std()[1]), output_layout="HWC"))
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
        return functional.normalize(images, self.constant(mean, images), self.constant(std, images))


@register_op
@dataclass
class Identity(Op):
    """`identity`: leaves the images as they are."""
    name: ClassVar[str] = "identity"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("Identity",), from_torchvision=lambda t, conv: Identity(),
        to_torchvision=lambda op, v2: v2.lib.Identity(), kornia=lambda op, k: None,
        torchaug=lambda op, ta: ta.lib.Identity(), dali=lambda op, d: lambda x: x)
    gated: ClassVar[bool] = False

    def sample(self, n, ctx):
        return {}

    def kernel(self, images, params, ctx):
        return images


def _blur_from(t, conv) -> GaussianBlur:
    k = t.kernel_size
    if k[0] != k[1]:
        conv.unsupported(f"only square kernels, got {k}")
    return GaussianBlur(sigma=(float(t.sigma[0]), float(t.sigma[1])), k=int(k[0]), p=1.0)


def _noise_from(t, conv) -> GaussianNoise:
    if t.mean != 0 or not t.clip:
        conv.unsupported("only mean=0 and clip=True are supported")
    return GaussianNoise(std=(float(t.sigma), float(t.sigma)), p=1.0)


def _normalize_from(t) -> Normalize:
    rgb = [list(map(float, v)) if len(v) == 3 else [float(v[0])] * 3 for v in (t.mean, t.std)]
    return Normalize(stats=":".join("/".join(f"{x:.10g}" for x in v) for v in rgb))


def _torch_noise(op: GaussianNoise):
    """For torchaug, which has no Gaussian noise: torch's own, per sample (std uniform in the
    op's range, a coin of `p`), added and clipped as torchvision's GaussianNoise(clip=True)."""
    def noise(images: torch.Tensor) -> torch.Tensor:
        rows = images.shape[0]
        std = torch.empty(rows, device=images.device).uniform_(*op.std)
        std = torch.where(torch.rand(rows, device=images.device) < op.p, std, torch.zeros_like(std))
        return (images + std.view(-1, 1, 1, 1) * torch.randn_like(images)).clamp_(0.0, 1.0)
    return noise
