"""`from_torchvision`: a torchvision.transforms.v2 pipeline as a batched, per-sample policy.

    policy = augpipe.from_torchvision(v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]))
    out = policy(uint8_batch, generator=g)          # one view: a tensor, as the transform gives per image

Each transform maps to an op with torchvision's parameter distribution, drawn per sample, and a
kernel equal to its functional op: the op whose `counterparts.torchvision` names the class. `Compose` chains; `RandomApply`
of one transform multiplies that op's probability. A transform with no op raises
`UnsupportedTransform` naming it and its position, or with `fallback="per-image"` runs through
torchvision image by image (correct, slow, host reads; warned once). Differences, each warned or
documented: resizes never antialias (torchvision's `antialias=False`); a uint8-scale solarize
threshold (> 1) is read as /255, since the policy works on floats in [0, 1].
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, ClassVar, NoReturn

import torch

from augpipe import sampling
from augpipe.ops import OPS, Identity, InRandomOrder, Normalize, OneOf, Op
from augpipe.policy import DTYPES, Policy, PolicyOptions, View
from augpipe.spec import sized

FALLBACKS = ("error", "per-image")


class UnsupportedTransform(ValueError):
    """A torchvision transform with no augpipe op; the message names it, its position, and what is supported."""


@dataclass
class Conversion:
    """What converting one pipeline found besides its ops (the view size, the output dtype), and
    the helpers ops' `from_torchvision` translations use (`Op.counterparts`): `here` is the
    transform being converted and its position, which every refusal names."""
    fallback: str = "error"
    size: tuple[int, int] | None = None
    dtype: torch.dtype | None = None
    notes: list[str] = field(default_factory=list)
    here: str = "pipeline"
    sizer: Op | None = None  # the op that set `size`
    # before the pipeline's ToDtype(scale=True), a pipeline that has one works on uint8 images:
    # its thresholds and fills are on the 0-255 scale, as torchvision reads them there
    uint8_scale: bool = False

    def to_unit(self, value: float, what: str) -> float:
        """A pixel value (threshold, fill) on the policy's [0, 1] scale: /255 on the uint8 scale;
        elsewhere, a value above 1 is read as uint8 too (said once)."""
        if self.uint8_scale:
            return float(value) / 255
        if value > 1:
            self.note(f"{self.here}: {what} {value:g} read on the uint8 scale, as {value / 255:g}")
            return float(value) / 255
        return float(value)

    def unsupported(self, what: str) -> NoReturn:
        raise UnsupportedTransform(f"from_torchvision: {self.here}: {what}")

    def set_size(self, size, op: Op | None = None) -> None:
        """The view's size is `size`; an earlier resize to another size keeps that one as its own
        (`Resize(56)` then `CenterCrop(48)`), any other earlier size is refused."""
        hw = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
        if len(hw) == 1:
            hw = (hw[0], hw[0])
        if self.size is not None and self.size != hw:
            if not hasattr(self.sizer, "height"):
                raise UnsupportedTransform(f"from_torchvision: {self.here} resizes to {hw} after an earlier transform "
                                           f"set {self.size}; only a Resize may come before another size")
            self.sizer.height, self.sizer.width = self.size  # the resize keeps its own size
        self.size, self.sizer = hw, op

    def sized(self, t, op: Op) -> Op:
        """`op`, the view's size being the transform's `size`."""
        self.set_size(t.size, op)
        return op

    def bilinear(self, t, op: Op) -> Op:
        """`op`, for a transform that interpolates bilinearly (the one mode resizes support)."""
        if _mode(t) != "bilinear":
            self.unsupported(f"only bilinear interpolation is supported, got {t.interpolation}")
        return op

    def resized(self, t, op: Op) -> Op:
        """`sized`, for a transform that resizes: bilinear only (its `antialias` is the op's)."""
        return self.sized(t, self.bilinear(t, op))

    def interpolation(self, t) -> str:
        """A warp's interpolation (nearest or bilinear, about the centre, without expand)."""
        mode = _mode(t)
        if mode not in ("nearest", "bilinear") or getattr(t, "center", None) is not None or getattr(t, "expand", False):
            self.unsupported("only nearest or bilinear interpolation about the image centre, without expand, "
                             "is supported")
        return mode

    def fill(self, t) -> float:
        """A fill of one number, on the policy's [0, 1] scale (`to_unit`)."""
        if not isinstance(t.fill, (int, float)):
            self.unsupported(f"fill must be one number, got {t.fill!r}")
        return self.to_unit(t.fill, "fill")

    def auto_fill(self, t) -> str:
        """The auto-augment ops' fill: `none` (torchvision's default: plain zero padding) or `fill`."""
        return "none" if t.fill is None else f"{self.fill(t):g}"

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
            warnings.warn(f"from_torchvision: {message}", UserWarning, stacklevel=5)


def _mode(t) -> str:
    """The transform's interpolation as a name (`InterpolationMode` or a string)."""
    mode = getattr(t, "interpolation", "bilinear")
    return str(getattr(mode, "value", mode))


def _converts_to_float(t) -> bool:
    """Whether the pipeline holds a ToDtype(scale=True) (then it is written for uint8 input)."""
    if type(t).__name__ == "ToDtype":
        return bool(t.scale)
    return any(_converts_to_float(inner) for inner in getattr(t, "transforms", ()))


def _to_dtype(t, conv: Conversion) -> list[Op]:
    dtype = t.dtype if isinstance(t.dtype, torch.dtype) else t.dtype.get(torch.Tensor, None)
    if dtype not in DTYPES.values() or not t.scale:
        conv.unsupported(f"only float32, bfloat16 or float16 with scale=True (images in [0, 1]) are supported, "
                         f"got {t.dtype}, scale={t.scale}")
    conv.dtype = dtype  # the last one wins: the policy computes in float32 and outputs this dtype
    conv.uint8_scale = False  # what follows works on [0, 1] floats
    return []


# Transforms that are no op: what they do is the policy's input or output format.
FORMAT: dict[str, Callable[[object, Conversion], list[Op]]] = {
    "ToDtype": _to_dtype,
    "ToImage": lambda t, conv: [],
    "ToPureTensor": lambda t, conv: [],
}


def translations() -> dict[str, type[Op]]:
    """torchvision class name -> the registered op that declares it (`Op.counterparts.torchvision`)."""
    return {name: cls for cls in OPS.values() for name in cls.counterparts.torchvision
            if cls.counterparts.from_torchvision is not None}


CONTAINERS = ("Compose", "RandomApply", "RandomChoice", "RandomOrder")


def supported() -> list[str]:
    return sorted(set(translations()) | set(FORMAT) | set(CONTAINERS))


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
    conv.here = f"{name} at {where}"
    if name in FORMAT:
        return FORMAT[name](t, conv)
    table = translations()
    if name in table:
        return [table[name].counterparts.from_torchvision(t, conv)]
    if conv.fallback == "per-image":
        conv.note(f"{name} at {where} runs image by image through torchvision (fallback='per-image'): a Python "
                  "call per image and a host read per batch")
        return [PerImage(transform=t)]
    raise UnsupportedTransform(f"from_torchvision: {name} at {where} is not supported (pass fallback='per-image' to "
                               f"run it image by image); supported: {', '.join(supported())}")


class DropInPolicy(Policy):
    """A policy from `from_torchvision`: one view is returned as a tensor (what the transform
    gives per image, stacked), with `masks=`, `boxes=` or `keypoints=` as `(images, Targets)`;
    several views as lists."""

    def __call__(self, images, generator=None, return_params=False, **targets):
        out = super().__call__(images, generator=generator, return_params=return_params, **targets)
        if len(self.views) != 1:
            return out
        if not any(targets.get(k) is not None for k in ("masks", "boxes", "keypoints")):
            return (out[0][0], out[1]) if return_params else out[0]
        views, moved, *params = out  # with targets: the view's images and its Targets
        return (views[0], moved[0], *params)


def from_torchvision(transform, views: int = 1, *, size: int | tuple[int, int] | None = None,
                     fallback: str = "error", **options) -> DropInPolicy:
    """A torchvision v2 pipeline (or a list of them, one per view: BYOL's pair) as a policy.

    Args:
        transform: A `torchvision.transforms.v2` transform or `Compose`, or a list of them.
        views: How many views; the pipelines cycle over them.
        size: The view size when no transform sets one. By default such a pipeline keeps the
            input's size, as torchvision does.
        fallback: `"error"` raises `UnsupportedTransform` for a transform without an op;
            `"per-image"` runs it image by image.
        **options: `PolicyOptions` fields (`gating`, `compile`, `dtype`, `channels_last`, ...).
            A final `ToDtype` sets the dtype.

    Returns:
        A policy whose views follow torchvision's semantics, each sample with its own parameters;
        called with `masks=`, `boxes=` or `keypoints=` it also returns the moved targets.

    Raises:
        UnsupportedTransform: A transform has no op and `fallback` is `"error"`.
        ValueError: `fallback` or `views` is invalid.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
    if not isinstance(views, int) or views < 1:
        raise ValueError(f"views must be a positive integer, got {views!r}")
    pipelines = list(transform) if isinstance(transform, (list, tuple)) else [transform]
    built, dtype = [], None
    for k, pipeline in enumerate(pipelines):
        conv = Conversion(fallback=fallback, uint8_scale=_converts_to_float(pipeline))
        ops = convert(pipeline, f"pipeline[{k}]" if len(pipelines) > 1 else "pipeline", conv)
        view_size = conv.size or ((size, size) if isinstance(size, int) else size)
        view_size = None if view_size is None else tuple(view_size)  # None: the input's, as torchvision
        built.append(View(size=view_size, ops=sized(ops, view_size)))
        dtype = conv.dtype or dtype
    if dtype is not None:
        options.setdefault("dtype", dtype)
    views_list = [built[i % len(built)] for i in range(views)]
    return DropInPolicy(views_list, PolicyOptions(name="torchvision", **options))
