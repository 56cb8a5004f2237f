"""`from_torchvision`: a torchvision.transforms.v2 pipeline as a batched, per-sample policy.

    policy = augpipe.from_torchvision(v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]))
    out = policy(uint8_batch, generator=g)          # one view: a tensor, as the transform gives per image

Each transform maps to an op with torchvision's parameter distribution, drawn per sample, and a
kernel equal to its functional op (`TRANSLATE`, by class name). `Compose` chains; `RandomApply`
of one transform multiplies that op's probability. A transform with no op raises
`UnsupportedTransform` naming it and its position, or with `fallback="per-image"` runs through
torchvision image by image (correct, slow, host reads; warned once). Differences, each warned or
documented: resizes never antialias (torchvision's `antialias=False`); a uint8-scale solarize
threshold (> 1) is read as /255, since the policy works on floats in [0, 1].
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, ClassVar

import torch

from augpipe import sampling
from augpipe.build import sized
from augpipe.grouping import View
from augpipe.op import Op
from augpipe.ops import (ColorJitter, GaussianBlur, GaussianNoise, Grayscale, HorizontalFlip, Identity, Normalize,
                         RandomResizedCrop, Resize, Solarize)
from augpipe.ops_recipes import (Affine, Autocontrast, CenterCrop, ChannelPermutation, Equalize, Erasing, Invert,
                                 Perspective, Posterize, RandomCrop, Rotate, Sharpness, VerticalFlip)
from augpipe.ops_auto import AutoAugment, RandAugment, TrivialAugmentWide
from augpipe.ops_meta import InRandomOrder, OneOf
from augpipe.options import DTYPES, PolicyOptions
from augpipe.policy import Policy

FALLBACKS = ("error", "per-image")


class UnsupportedTransform(ValueError):
    """A torchvision transform with no augpipe op; the message names it, its position, and what is supported."""


@dataclass
class Conversion:
    """What converting one pipeline found besides its ops: the view size, the output dtype."""
    fallback: str = "error"
    size: tuple[int, int] | None = None
    dtype: torch.dtype | None = None
    notes: list[str] = field(default_factory=list)

    def set_size(self, size, where: str) -> None:
        hw = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
        if len(hw) == 1:
            hw = (hw[0], hw[0])
        if self.size is not None and self.size != hw:
            raise UnsupportedTransform(f"from_torchvision: {where} resizes to {hw} after an earlier transform set "
                                       f"{self.size}; a view has one size")
        self.size = hw

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
            warnings.warn(f"from_torchvision: {message}", UserWarning, stacklevel=4)


def _mode(t) -> str:
    """The transform's interpolation as a name (`InterpolationMode` or a string)."""
    mode = getattr(t, "interpolation", "bilinear")
    return str(getattr(mode, "value", mode))


def _bilinear(t, where: str, conv: Conversion) -> None:
    if _mode(t) != "bilinear":
        raise UnsupportedTransform(f"from_torchvision: {type(t).__name__} at {where}: only bilinear interpolation "
                                   f"is supported, got {t.interpolation}")
    if getattr(t, "antialias", False):
        conv.note(f"{type(t).__name__} at {where} has antialias=True; augpipe resizes without antialiasing "
                  "(as antialias=False): equal when enlarging, sharper when shrinking")


def _rrc(t, where, conv):
    _bilinear(t, where, conv)
    conv.set_size(t.size, where)
    return [RandomResizedCrop(scale=tuple(t.scale), ratio=tuple(t.ratio))]


def _resize(t, where, conv):
    _bilinear(t, where, conv)
    if t.size is None or getattr(t, "max_size", None) is not None:
        raise UnsupportedTransform(f"from_torchvision: Resize at {where}: give a size (int on square batches, or (h, w))")
    conv.set_size(t.size, where)
    return [Resize()]


def _random_crop(t, where, conv):
    padding = list(t.padding) if t.padding else [0, 0, 0, 0]
    if len(set(padding)) != 1:
        raise UnsupportedTransform(f"from_torchvision: RandomCrop at {where}: only one padding for every side is "
                                   f"supported, got padding={t.padding}")
    conv.set_size(t.size, where)
    return [RandomCrop(padding=int(padding[0]), pad_if_needed=bool(t.pad_if_needed), fill=_fill(t, where),
                       mode=t.padding_mode)]


def _center_crop(t, where, conv):
    conv.set_size(t.size, where)
    return [CenterCrop()]


def _jitter(t, where, conv):
    strengths = []
    for key in ("brightness", "contrast", "saturation"):
        value = getattr(t, key)
        strength = 0.0 if value is None else value[1] - 1.0
        if value is not None and abs(value[0] - max(0.0, 1.0 - strength)) > 1e-9:
            raise UnsupportedTransform(f"from_torchvision: ColorJitter at {where}: {key}={tuple(value)} is not "
                                       "(max(0, 1-s), 1+s); only a strength s is supported")
        strengths.append(strength)
    hue = 0.0 if t.hue is None else t.hue[1]
    if t.hue is not None and abs(t.hue[0] + hue) > 1e-9:
        raise UnsupportedTransform(f"from_torchvision: ColorJitter at {where}: hue={tuple(t.hue)} is not (-h, h)")
    return [ColorJitter(brightness=strengths[0], contrast=strengths[1], saturation=strengths[2], hue=hue, p=1.0)]


def _blur(t, where, conv):
    k = t.kernel_size
    if k[0] != k[1]:
        raise UnsupportedTransform(f"from_torchvision: GaussianBlur at {where}: only square kernels, got {k}")
    return [GaussianBlur(sigma=(float(t.sigma[0]), float(t.sigma[1])), k=int(k[0]), p=1.0)]


def _grayscale(t, where, conv):
    if getattr(t, "num_output_channels", 3) != 3:
        raise UnsupportedTransform(f"from_torchvision: Grayscale at {where}: only num_output_channels=3 is supported")
    return [Grayscale(p=getattr(t, "p", 1.0))]


def _solarize(t, where, conv):
    threshold = float(t.threshold)
    if threshold > 1:
        conv.note(f"RandomSolarize at {where}: threshold {threshold:g} read on the uint8 scale, as {threshold / 255:g}")
        threshold /= 255
    return [Solarize(threshold=threshold, p=t.p)]


def _noise(t, where, conv):
    if t.mean != 0 or not t.clip:
        raise UnsupportedTransform(f"from_torchvision: GaussianNoise at {where}: only mean=0 and clip=True are supported")
    return [GaussianNoise(std=(float(t.sigma), float(t.sigma)), p=1.0)]


def _erasing(t, where, conv):
    value = "random" if t.value is None else "/".join(f"{float(v):g}" for v in t.value)
    return [Erasing(p=t.p, scale=tuple(t.scale), ratio=tuple(t.ratio), value=value)]


def _normalize(t, where, conv):
    rgb = [list(map(float, v)) if len(v) == 3 else [float(v[0])] * 3 for v in (t.mean, t.std)]
    return [Normalize(stats=":".join("/".join(f"{x:.10g}" for x in v) for v in rgb))]


def _interpolation(t, where) -> str:
    mode = _mode(t)
    if mode not in ("nearest", "bilinear") or getattr(t, "center", None) is not None or getattr(t, "expand", False):
        raise UnsupportedTransform(f"from_torchvision: {type(t).__name__} at {where}: only nearest or bilinear "
                                   "interpolation about the image centre, without expand, is supported")
    return mode


def _fill(t, where) -> float:
    """A fill of one number, read on the uint8 scale when above 1 (the policy works in [0, 1])."""
    if not isinstance(t.fill, (int, float)):
        raise UnsupportedTransform(f"from_torchvision: {type(t).__name__} at {where}: fill must be one number, "
                                   f"got {t.fill!r}")
    return float(t.fill) / 255 if t.fill > 1 else float(t.fill)


def _affine(t, where, conv):
    shear = list(t.shear) if t.shear is not None else [0.0, 0.0]
    shear_y = (float(shear[2]), float(shear[3])) if len(shear) == 4 else (0.0, 0.0)
    translate = t.translate or (0.0, 0.0)
    return [Affine(degrees=(float(t.degrees[0]), float(t.degrees[1])), translate_x=float(translate[0]),
                   translate_y=float(translate[1]), scale=tuple(float(v) for v in (t.scale or (1.0, 1.0))),
                   shear_x=(float(shear[0]), float(shear[1])), shear_y=shear_y, mode=_interpolation(t, where),
                   fill=_fill(t, where))]


def _perspective(t, where, conv):
    return [Perspective(distortion=float(t.distortion_scale), mode=_interpolation(t, where), fill=_fill(t, where),
                        p=float(t.p))]


def _rotate(t, where, conv):
    return [Rotate(degrees=(float(t.degrees[0]), float(t.degrees[1])), mode=_interpolation(t, where),
                   fill=_fill(t, where))]


def _auto_fill(t, where) -> str:
    """The auto-augment ops' fill: `none` (torchvision's default: plain zero padding) or `_fill`."""
    return "none" if t.fill is None else f"{_fill(t, where):g}"


def _trivial(t, where, conv):
    return [TrivialAugmentWide(bins=t.num_magnitude_bins, mode=_interpolation(t, where), fill=_auto_fill(t, where))]


def _randaugment(t, where, conv):
    return [RandAugment(num_ops=t.num_ops, magnitude=t.magnitude, bins=t.num_magnitude_bins,
                        mode=_interpolation(t, where), fill=_auto_fill(t, where))]


def _autoaugment(t, where, conv):
    return [AutoAugment(policy=t.policy.value, mode=_interpolation(t, where), fill=_auto_fill(t, where))]


def _to_dtype(t, where, conv):
    dtype = t.dtype if isinstance(t.dtype, torch.dtype) else t.dtype.get(torch.Tensor, None)
    if dtype not in DTYPES.values() or not t.scale:
        raise UnsupportedTransform(f"from_torchvision: ToDtype at {where}: only float32, bfloat16 or float16 with "
                                   f"scale=True (images in [0, 1]) are supported, got {t.dtype}, scale={t.scale}")
    conv.dtype = dtype  # the last one wins: the policy computes in float32 and outputs this dtype
    return []


TRANSLATE: dict[str, Callable[[object, str, Conversion], list[Op]]] = {
    "RandomResizedCrop": _rrc,
    "Resize": _resize,
    "RandomCrop": _random_crop,
    "CenterCrop": _center_crop,
    "RandomHorizontalFlip": lambda t, where, conv: [HorizontalFlip(p=t.p)],
    "RandomVerticalFlip": lambda t, where, conv: [VerticalFlip(p=t.p)],
    "ColorJitter": _jitter,
    "RandomGrayscale": _grayscale,
    "Grayscale": _grayscale,
    "GaussianBlur": _blur,
    "RandomSolarize": _solarize,
    "GaussianNoise": _noise,
    "RandomPosterize": lambda t, where, conv: [Posterize(bits=(float(t.bits), float(t.bits)), p=t.p)],
    "RandomAdjustSharpness": lambda t, where, conv: [
        Sharpness(factor=(float(t.sharpness_factor), float(t.sharpness_factor)), p=t.p)],
    "RandomAutocontrast": lambda t, where, conv: [Autocontrast(p=t.p)],
    "RandomInvert": lambda t, where, conv: [Invert(p=t.p)],
    "RandomEqualize": lambda t, where, conv: [Equalize(p=t.p)],
    "RandomChannelPermutation": lambda t, where, conv: [ChannelPermutation(p=1.0)],
    "RandomErasing": _erasing,
    "RandomAffine": _affine,
    "RandomRotation": _rotate,
    "RandomPerspective": _perspective,
    "TrivialAugmentWide": _trivial,
    "RandAugment": _randaugment,
    "AutoAugment": _autoaugment,
    "Normalize": _normalize,
    "ToDtype": _to_dtype,
    "ToImage": lambda t, where, conv: [],
    "ToPureTensor": lambda t, where, conv: [],
    "Identity": lambda t, where, conv: [Identity()],
}
CONTAINERS = ("Compose", "RandomApply", "RandomChoice", "RandomOrder")


def supported() -> list[str]:
    return sorted(set(TRANSLATE) | set(CONTAINERS))


@dataclass
class PerImage(Op):
    """A torchvision transform run image by image (`fallback="per-image"`): each sample draws a
    seed from the policy's generator (same seed, same output), read back to the host to seed
    torchvision's global RNG around the call. Slow; never on the sync-free path."""
    name: ClassVar[str] = "torchvision"
    gated: ClassVar[bool] = False
    transform: object = None

    def sample(self, n, ctx):
        seeds = sampling.uniform(n, 0.0, 2.0 ** 24, ctx.generator, ctx.device).floor_()  # whole in float32
        return {"apply": sampling.bernoulli(n, 1.0, ctx.generator, ctx.device), "seed": seeds}

    def kernel(self, images, params, ctx):
        out = []
        for image, seed in zip(images, params["seed"].tolist()):  # the host read of the fallback
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                out.append(self.transform(image))
        result = torch.stack(out)
        if result.shape != images.shape:
            raise UnsupportedTransform(f"from_torchvision: {type(self.transform).__name__} (per image) changed the "
                                       f"shape {tuple(images.shape[1:])} -> {tuple(result.shape[1:])}; only "
                                       "shape-keeping transforms can run per image")
        return result


def _with_p(op: Op, p: float, where: str) -> Op:
    """`RandomApply([t], p)`: the op's own coin times p (independent coins)."""
    if op.changes_size or isinstance(op, (Normalize, Identity, PerImage)):
        raise UnsupportedTransform(f"from_torchvision: RandomApply at {where} around {type(op).__name__}: a "
                                   "size-changing or deterministic op has no per-sample probability here")
    return replace(op, p=op.p * p)


def _per_sample_choice(t, name: str, where: str, conv: Conversion) -> Op:
    """RandomChoice / RandomOrder of transforms that are one op each, drawn per sample."""
    ops = []
    for i, inner in enumerate(t.transforms):
        converted = convert(inner, f"{where}[{i}]", conv)
        if len(converted) != 1 or converted[0].changes_size:
            raise UnsupportedTransform(f"from_torchvision: {name} at {where}: each choice must be one size-keeping "
                                       f"transform; [{i}] is {len(converted)} ops")
        ops.append(converted[0])
    if name == "RandomChoice":
        op = OneOf(ops=ops, weights=list(t.p) if t.p is not None else [])
    else:
        op = InRandomOrder(ops=ops)
    op.validate()
    return op


def convert(t, where: str, conv: Conversion) -> list[Op]:
    """One transform (and what it contains) as ops."""
    name = type(t).__name__
    if name == "Compose":
        return [op for i, inner in enumerate(t.transforms) for op in convert(inner, f"{where}[{i}]", conv)]
    if name == "RandomApply":
        inner = [op for i, s in enumerate(t.transforms) for op in convert(s, f"{where}[{i}]", conv)]
        if len(inner) != 1:
            raise UnsupportedTransform(f"from_torchvision: RandomApply at {where} holds {len(inner)} ops under one coin; "
                                       "only RandomApply of one transform is supported")
        return [_with_p(inner[0], t.p, where)]
    if name in ("RandomChoice", "RandomOrder"):
        return [_per_sample_choice(t, name, where, conv)]
    if name in TRANSLATE:
        return TRANSLATE[name](t, where, conv)
    if conv.fallback == "per-image":
        conv.note(f"{name} at {where} runs image by image through torchvision (fallback='per-image'): a Python "
                  "call per image and a host read per batch")
        return [PerImage(transform=t)]
    raise UnsupportedTransform(f"from_torchvision: {name} at {where} is not supported (pass fallback='per-image' to "
                               f"run it image by image); supported: {', '.join(supported())}")


class DropInPolicy(Policy):
    """A policy from `from_torchvision`: one view is returned as a tensor (what the transform
    gives per image, stacked); several views as a list."""

    def __call__(self, images, generator=None, return_params=False):
        out = super().__call__(images, generator=generator, return_params=return_params)
        if len(self.views) != 1:
            return out
        return (out[0][0], out[1]) if return_params else out[0]


def from_torchvision(transform, views: int = 1, *, size: int | tuple[int, int] | None = None,
                     fallback: str = "error", **options) -> DropInPolicy:
    """A torchvision v2 pipeline (or a list of them, one per view: BYOL's pair) as a policy.

    views:    how many views; the pipelines cycle over them.
    size:     the view size when no transform sets one (a pipeline of colour ops only).
    fallback: `error` (UnsupportedTransform) or `per-image` for transforms without an op.
    options:  `PolicyOptions` (gating, compile, dtype, channels_last, ...); a final `ToDtype`
              sets the dtype.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
    if not isinstance(views, int) or views < 1:
        raise ValueError(f"views must be a positive integer, got {views!r}")
    pipelines = list(transform) if isinstance(transform, (list, tuple)) else [transform]
    built, dtype = [], None
    for k, pipeline in enumerate(pipelines):
        conv = Conversion(fallback=fallback)
        ops = convert(pipeline, f"pipeline[{k}]" if len(pipelines) > 1 else "pipeline", conv)
        view_size = conv.size or ((size, size) if isinstance(size, int) else size)
        if view_size is None:
            raise UnsupportedTransform("from_torchvision: the pipeline sets no size (no crop or resize); pass size=")
        built.append(View(size=tuple(view_size), ops=sized(ops)))
        dtype = conv.dtype or dtype
    if dtype is not None:
        options.setdefault("dtype", dtype)
    views_list = [built[i % len(built)] for i in range(views)]
    return DropInPolicy(views_list, PolicyOptions(name="torchvision", **options))
