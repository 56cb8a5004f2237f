"""The op contract and its registry: what any op, built-in or the user's, must be.

An op is a dataclass whose fields are its spec-string arguments (`p` included), with:
- class attributes `name` (the spec-string name), `positional` (arguments accepted without
  `key=`), and optionally `changes_size` (the op makes the view's output size: a crop) and
  `gated` (False: the op applies its own `apply` mask; True: the policy keeps the kernel's result
  only where `apply` is set);
- `sample(n, ctx) -> dict[str, Tensor]`: every per-sample parameter as `[n, ...]` tensors on
  `ctx.device`, drawn from `ctx.generator` with `augpipe.sampling`'s helpers, never read back
  to the host; `super().sample(n, ctx)` draws the bool `apply` mask (True with probability `p`);
- `kernel(images, params, ctx) -> Tensor`: a pure function of float `[N, C, H, W]` images in
  [0, 1] and those parameters that transforms every row, with shapes fixed by `ctx.out_size`;
- optionally `counterparts` (`Counterparts`): what the op is in torchvision, Kornia, torchaug
  and DALI, which `from_torchvision` and those engines read.

The gating rule is here too (`gate`): which rows keep a `gated` op's result, by a masked blend
(no host read) or row subsets (the CPU); the policy runs every op through it, and ops made of
ops gate their branches with it.

`@register_op` makes the class known to spec strings, presets, overrides, every policy and the
augpipe engine; see docs/ARCHITECTURE.md ("augpipe: the op contract") and the Extending guide
(docs/guide/extending.md) for a complete example.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import torch

from _augpipe_shared.registry import Registry
from augpipe import sampling
from augpipe.functional import put

Range = tuple[float, float]


Size = tuple[int, int]


@dataclass(frozen=True)
class SampleContext:
    """What a sampler needs besides its own ranges (all static: no tensor is read).

    `frames`: frames per sample (video clips `[N, T, C, H, W]`: T; images: 1). Every parameter is
    drawn once per sample (a clip's frames share it), except those an op names in `frame_keys()`,
    drawn for `n * frames` rows (per-pixel noise differs from frame to frame, as in torchvision).
    """
    generator: torch.Generator | None
    device: torch.device
    in_size: Size   # (H, W) of the images entering the op
    out_size: Size  # (h, w) of the view
    frames: int = 1


@dataclass(frozen=True)
class ApplyContext:
    """What a kernel needs besides the images and its parameters.

    `out_size`: the view's (h, w); `inplace`: the kernel may write into `images` (the policy owns
    them); `gating`: the policy's (`blend`: no host read; `subset`: row subsets allowed, which ops
    made of ops use to run each branch on its own rows); `options`: kernel choices the runner
    makes, by name (e.g. `hue_kernel`, the CPU path's compiled hue). Explicit, so that no hidden
    state decides which kernel runs.
    """
    out_size: Size
    inplace: bool = False
    gating: str = "blend"
    options: Mapping[str, Any] = field(default_factory=dict)

    def but(self, **changes) -> "ApplyContext":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Counterparts:
    """What an op is in the other libraries: one entry per library, each a function (None: that
    library has no counterpart, and its engine refuses the op in one line).

    - `torchvision`: the `torchvision.transforms.v2` class names `from_torchvision` turns into
      this op; `from_torchvision(transform, conversion) -> Op` does it. `conversion` is the
      converter's: `unsupported(what)` (raises, naming the transform and its position), `note`,
      `set_size`, `fill`, `auto_fill`, `interpolation`, `bilinear`.
    - `to_torchvision`, `kornia`, `torchaug`, `dali`: `(op, target) -> that library's transform`
      for the engine of that name. `target` is the engine's: `lib` (the library's module: v2,
      `kornia.augmentation`, `torchaug.transforms`, DALI's `fn`), `size` (the view's (h, w)),
      `batch` (torchaug: the batch size), `unsupported(what)` (raises, naming the engine) and
      that engine's helpers (docs/ARCHITECTURE.md). DALI's transform is a function of DALI's data
      node; `dali_uint8`: it runs on uint8 images (DALI's colour operators), else on float.

    Translations import nothing: the library arrives as `target.lib`, so an op module stays free
    of optional dependencies and of the interop layer above it.
    """
    torchvision: tuple[str, ...] = ()
    from_torchvision: Callable[[Any, Any], "Op"] | None = None
    to_torchvision: Callable[["Op", Any], Any] | None = None
    kornia: Callable[["Op", Any], Any] | None = None
    torchaug: Callable[["Op", Any], Any] | None = None
    dali: Callable[["Op", Any], Any] | None = None
    dali_uint8: bool = False

    def __set_name__(self, owner: type, name: str) -> None:
        """Remember the op class that declares these (`coin_only` converts back to it)."""
        if not hasattr(self, "owner"):
            object.__setattr__(self, "owner", owner)


def coin_only(torchvision: str, *, kornia: bool = False, torchaug: bool = True, dali=None,
              dali_uint8: bool = False) -> Counterparts:
    """The counterparts of an op that is, in torchvision and in the libraries named, the class
    `torchvision` with only its coin `p` (torchaug's drawn per sample: `batch_transform`);
    `from_torchvision` makes the op class that declares them."""
    def made(op, target):
        return getattr(target.lib, torchvision)(p=op.p)

    declared = Counterparts(
        torchvision=(torchvision,), from_torchvision=lambda t, conv: declared.owner(p=t.p), to_torchvision=made,
        kornia=made if kornia else None, dali=dali, dali_uint8=dali_uint8,
        torchaug=(lambda op, ta: getattr(ta.lib, torchvision)(p=op.p, batch_transform=True)) if torchaug else None)
    return declared


@dataclass
class Op:
    """Base class of every op: the probability `p` and the spec-string metadata."""
    name: ClassVar[str] = ""
    positional: ClassVar[tuple[str, ...]] = ()  # argument names accepted without `key=`
    changes_size: ClassVar[bool] = False
    gated: ClassVar[bool] = True  # the policy keeps the kernel's result only where `apply` is set
    counterparts: ClassVar[Counterparts] = Counterparts()  # none: augpipe's engines only
    geometric: ClassVar[bool] = False  # it moves pixels: masks, boxes and keypoints must follow
    p: float = 1.0

    def sample(self, n: int, ctx: SampleContext) -> dict[str, torch.Tensor]:
        return {"apply": sampling.bernoulli(n, self.p, ctx.generator, ctx.device)}

    def kernel(self, images: torch.Tensor, params: dict[str, torch.Tensor], ctx: ApplyContext) -> torch.Tensor:
        """Transform every row; `ctx.inplace` allows writing into `images`."""
        raise NotImplementedError

    def output_size(self, in_size: Size, view_size: Size | None) -> Size | None:
        """The size a `changes_size` op makes from `in_size`: the view's by default (None: it
        needs one and the view has none). An op with a size of its own returns that."""
        return view_size

    def move_points(self, points: torch.Tensor, params: dict[str, torch.Tensor], in_size: Size,
                    out_size: Size, corners: bool = False) -> torch.Tensor:
        """Keypoints (or box corners, `corners=True`) `[N, M, 2]` (x, y) after this op on images of
        `in_size`, for every row (the policy keeps the moved points only where a gated op's `apply`
        is set). An op that moves no pixel leaves them; a geometric op says how
        (`augpipe.functional`). The two differ in flips only: torchvision mirrors keypoints about
        `W - 1` (pixel indices) and box edges about `W`."""
        if self.geometric or self.changes_size:
            raise NotImplementedError(f"{self.name}: moving masks, boxes or keypoints is not supported")
        return points

    def move_masks(self, masks: torch.Tensor, params: dict[str, torch.Tensor], ctx: ApplyContext) -> torch.Tensor:
        """Masks `[N, K, H, W]` (float label values) after this op, resampled with nearest."""
        if self.geometric or self.changes_size:
            raise NotImplementedError(f"{self.name}: moving masks, boxes or keypoints is not supported")
        return masks

    def frame_keys(self) -> frozenset[str]:
        """The parameters `sample` draws per frame (`n * ctx.frames` rows) rather than per sample."""
        return frozenset()

    def spec(self) -> str:
        """The canonical spec-string form of this op, every argument spelled out."""
        def fmt(v):
            return f"{v[0]:g}:{v[1]:g}" if isinstance(v, tuple) else (f"{v:g}" if isinstance(v, float) else str(v))
        args = ", ".join(f"{f.name}={fmt(getattr(self, f.name))}" for f in dataclasses.fields(self))
        return f"{self.name}({args})" if args else self.name

    def constant(self, values, like: torch.Tensor) -> torch.Tensor:
        """`values` (host numbers) as a tensor on `like`'s device and dtype, made once per device
        and dtype and kept by this op (not a field): a tensor built from host numbers is a
        host-to-device copy, which would synchronise every call on the GPU path."""
        cache = getattr(self, "_constants", None)
        if cache is None:
            cache = self._constants = {}
        key = (tuple(values), like.device, like.dtype)
        if key not in cache:
            cache[key] = torch.tensor(values, dtype=like.dtype, device=like.device)
        return cache[key]

    def validate(self) -> None:
        """Every op's rules, before its own (subclasses call `super().validate()` first): each
        number finite, each range `lo <= hi`, and `p` in [0, 1]."""
        for f in dataclasses.fields(self):
            check_finite(self.name, f.name, getattr(self, f.name))
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"{self.name}: p must be in [0, 1], got {self.p}")


def check_finite(op: str, key: str, value) -> None:
    """A number, or a range of two, that is finite (nan and inf mean nothing as a parameter) and
    ordered, else a ValueError naming the op, the key and the value. Other values pass."""
    numbers = value if isinstance(value, tuple) else (value,)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        return
    if not all(math.isfinite(v) for v in numbers):
        shown = ":".join(f"{v:g}" for v in numbers)
        raise ValueError(f"{op}: {key} must be finite, got {shown}")
    if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
        raise ValueError(f"{op}: {key} range must be ordered LO:HI, got {value[0]:g}:{value[1]:g}")


def check_range(op: str, key: str, value: Range, low: float, high: float = float("inf")) -> None:
    """`low <= lo <= hi <= high`, else a ValueError naming the op, the key and the value."""
    if not (low <= value[0] <= value[1] <= high):
        raise ValueError(f"{op}: {key} must satisfy {low:g} <= lo <= hi <= {high:g}, got {value[0]:g}:{value[1]:g}")


_NAME = re.compile(r"[A-Za-z_][\w-]*")


def _contract_errors(cls: type) -> list[str]:
    """What keeps `cls` from being an op (empty when it is one)."""
    if not (isinstance(cls, type) and issubclass(cls, Op)):
        return ["it must be a subclass of augpipe.Op"]
    errors = []
    if "__dataclass_fields__" not in cls.__dict__:
        errors.append("it must be decorated with @dataclasses.dataclass (its fields are the spec-string keys)")
    if not isinstance(cls.name, str) or not _NAME.fullmatch(cls.name):
        errors.append(f"its class attribute `name` must be a word like 'my_op', got {cls.name!r}")
    keys = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in cls.positional if k not in keys]
    if unknown:
        errors.append(f"`positional` names {unknown}, which are not fields ({sorted(keys)})")
    if cls.kernel is Op.kernel:
        errors.append("it must define kernel(self, images, params, ctx)")
    return errors


OPS: Registry[type[Op]] = Registry("op", "register_op", _contract_errors)


register_op = OPS.class_decorator(
    """Register an op: `@register_op` or `@register_op(replace=True)` above an `@dataclass`
    subclass of `Op`; its `name` becomes a spec-string op.""")


def op_fields(cls: type[Op]) -> dict[str, object]:
    """Argument name -> default value, for error messages and the parser."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def gate(op: Op, images: torch.Tensor, params: dict[str, torch.Tensor], ctx: ApplyContext,
         gating: str) -> torch.Tensor:
    """Run `op` on the rows whose `apply` mask is set; the others pass through unchanged.
    `ctx.inplace` says whether `images` belong to the policy (may be written)."""
    if not op.gated or op.p >= 1.0:  # static: every row
        return op.kernel(images, params, ctx.but(inplace=ctx.inplace and gating == "subset"))
    if op.p <= 0.0:
        return images
    mask = params["apply"]
    if gating == "blend":
        return torch.where(mask.view(-1, 1, 1, 1), op.kernel(images, params, ctx.but(inplace=False)), images)
    idx = mask.nonzero().squeeze(1)  # on the CPU, the host read costs nothing
    count = idx.numel()
    if count == 0:
        return images
    if count == images.shape[0]:
        return op.kernel(images, params, ctx)
    sub = {k: v.index_select(0, idx) for k, v in params.items()}
    result = op.kernel(images.index_select(0, idx), sub, ctx.but(inplace=True))
    target = images if ctx.inplace else images.clone()
    return put(target, idx, result)


@dataclass
class WholeImage(Op):
    """An op whose kernel is one parameter-free function of the images (`transform`), kept
    per sample with probability `p` by the policy's gating."""
    positional: ClassVar[tuple[str, ...]] = ("p",)
    transform: ClassVar[Callable[[torch.Tensor], torch.Tensor]]
    p: float = 0.5

    def kernel(self, images, params, ctx):
        return type(self).transform(images)


def describe(chains: list[list[Op]]) -> str:
    """The canonical spec string of `chains` (every argument spelled out)."""
    return " | ".join("+".join(op.spec() for op in chain) for chain in chains)
