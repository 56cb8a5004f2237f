"""TrivialAugmentWide, RandAugment and AutoAugment, per sample: each sample draws its own op (and
magnitude, and sign; AutoAugment: its own sub-policy and coins) from torchvision's augmentation
space; fixed shapes, no host read.

Each space entry is (name, magnitudes, signed): `magnitudes(bins, h, w)` is torchvision's table,
made on the images' device (`torch.linspace` there: no host copy, and the very values torchvision
indexes, so whole-pixel translations and posterize bits truncate alike). A slot picks one op per
row (`_meta.per_row`): with blend gating every op runs on every row (sync-free, compilable:
the GPU path), with subset gating each op on its own rows (the CPU default).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from augpipe import functional, sampling
from augpipe.functional import loops_pay, take
from augpipe.ops._autoaugment_policies import POLICIES
from augpipe.ops._base import Counterparts, Op, register_op
from augpipe.ops._meta import per_row_steps


def _linspace(lo: float, hi: float):
    return lambda bins, h, w, device: torch.linspace(lo, hi, bins, device=device)


def _posterize_bits(top: int, span: int):
    return lambda bins, h, w, device: (top - torch.arange(bins, device=device) / ((bins - 1) / span)).round()


def _space(shear: float, translate, rotate: float, colour: float, bits: tuple[int, int]) -> list[tuple]:
    """torchvision's `_AUGMENTATION_SPACE` of TrivialAugmentWide / RandAugment, in its order."""
    return [("Identity", None, False), ("ShearX", _linspace(0.0, shear), True), ("ShearY", _linspace(0.0, shear), True),
            ("TranslateX", lambda b, h, w, d: translate(b, w, d), True),
            ("TranslateY", lambda b, h, w, d: translate(b, h, d), True),
            ("Rotate", _linspace(0.0, rotate), True), ("Brightness", _linspace(0.0, colour), True),
            ("Color", _linspace(0.0, colour), True), ("Contrast", _linspace(0.0, colour), True),
            ("Sharpness", _linspace(0.0, colour), True), ("Posterize", _posterize_bits(*bits), False),
            ("Solarize", _linspace(1.0, 0.0), False), ("AutoContrast", None, False), ("Equalize", None, False)]


TRIVIAL_SPACE = _space(0.99, lambda bins, side, device: torch.linspace(0.0, 32.0, bins, device=device), 135.0,
                       0.99, (8, 6))
RANDAUGMENT_SPACE = _space(0.3, lambda bins, side, device: torch.linspace(0.0, 150.0 / 331.0 * side, bins,
                                                                          device=device), 30.0, 0.9, (8, 4))
AUTOAUGMENT_SPACE = RANDAUGMENT_SPACE + [("Invert", None, False)]


def _affine(images, angle=None, tx=None, ty=None, shear_x=None, shear_y=None, centre=(0.0, 0.0), mode="nearest",
            fill=None):
    zero = torch.zeros(images.shape[0], dtype=torch.float64, device=images.device)
    matrix = functional.inverse_affine_matrix(*(zero if v is None else v for v in (angle, tx, ty)), zero + 1,
                                           *(zero if v is None else v for v in (shear_x, shear_y)), centre=centre)
    return functional.affine(images, matrix, mode, fill)


def _shear_degrees(m: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.atan(m.to(torch.float64)))


def _translate(images, tx, ty, mode, fill, rows_loop):
    """`F.affine` with whole-pixel translations `[N]`. With nearest sampling that is a shifted
    copy, `fill` (zero for none) where it leaves the image: on the CPU path from 80 x 80 px, a
    copy per row (`crop_rows`), faster there than one grid_sample and slower below
    (benchmarks/kernel-choices.json, `translate-rows`)."""
    if rows_loop and mode == "nearest" and loops_pay(images.shape):
        window = torch.stack([-ty, -tx], dim=1).to(torch.int64)  # where each output's window starts
        return functional.crop_rows(images, window, tuple(images.shape[-2:]), fill=0.0 if fill is None else fill)
    return _affine(images, tx=tx, ty=ty, mode=mode, fill=fill)


# Space entries that one kernel call serves together, each row taking its own entry's parameters:
# the shears (about the top-left corner) and the rotation (about the centre) as one `F.affine`,
# the two whole-pixel translations as one shift. Rows that chose one entry are
# `apply_one`'s; per slot 2 calls instead of 5: on the GPU path, where every branch runs
# on every row, 2 grid_samples instead of 5.
JOINT = {"ShearX": "affine", "ShearY": "affine", "Rotate": "affine", "TranslateX": "translate",
         "TranslateY": "translate"}


def apply_joint(kind: str, images: torch.Tensor, op: torch.Tensor, m: torch.Tensor, names: list[str], mode: str,
                fill: float | None, rows_loop: bool = False) -> torch.Tensor:
    """The `JOINT` entries of `kind` on rows whose entry `op` (indices into `names`) is one of them."""
    def only(name: str, value: torch.Tensor) -> torch.Tensor:  # `value` on that entry's rows, 0 elsewhere
        return torch.where(op == names.index(name), value, torch.zeros_like(value))

    if kind == "translate":  # int(magnitude) pixels
        return _translate(images, only("TranslateX", m.trunc()), only("TranslateY", m.trunc()), mode, fill, rows_loop)
    h, w = images.shape[-2:]
    sheared = (op == names.index("ShearX")) | (op == names.index("ShearY"))
    corner = [torch.where(sheared, -side * 0.5, 0.0).to(torch.float64) for side in (w, h)]
    shear = _shear_degrees(m)
    return _affine(images, angle=only("Rotate", -m), shear_x=only("ShearX", shear),  # F.rotate(a) = affine(-a)
                   shear_y=only("ShearY", shear), centre=corner, mode=mode, fill=fill)


def apply_one(name: str, images: torch.Tensor, m: torch.Tensor, mode: str, fill: float | None,
              rows_loop: bool = False) -> torch.Tensor:
    """torchvision's `_apply_image_or_video_transform` with a magnitude per sample. `rows_loop`:
    the CPU path (subset gating), where kernels may read their parameters on the host. The
    geometric entries are `apply_joint`'s (each defined once), on rows that all chose `name`."""
    if name in JOINT:
        names = [entry[0] for entry in AUTOAUGMENT_SPACE]
        op = torch.full(m.shape, names.index(name), dtype=torch.int64, device=m.device)
        return apply_joint(JOINT[name], images, op, m, names, mode, fill, rows_loop)
    table: dict[str, Callable[[], torch.Tensor]] = {
        "Identity": lambda: images,
        "Brightness": lambda: functional.adjust_brightness(images, 1.0 + m),
        "Color": lambda: functional.adjust_saturation(images, 1.0 + m),
        "Contrast": lambda: functional.adjust_contrast(images, 1.0 + m),
        "Sharpness": lambda: functional.adjust_sharpness(images, 1.0 + m),
        "Posterize": lambda: functional.posterize(images, m.trunc()),
        "Solarize": lambda: functional.solarize(images, m),
        "AutoContrast": lambda: functional.autocontrast(images),
        "Equalize": lambda: functional.equalize(images),
        "Invert": lambda: functional.invert(images),
    }
    return table[name]()


def _fill_value(text: str) -> float | None:
    return None if text == "none" else float(text)


@dataclass
class _AutoAugment(Op):
    """Base: `slots` op draws in a row, each from `space`, run by one shared kernel (`op{slot}`
    picks the space entry per row, `magnitude{slot}` its signed magnitude); subclasses draw them."""
    space: ClassVar[list] = []
    geometric: ClassVar[bool] = True  # shears, translations, rotation: masks and boxes do not follow yet
    mode: str = "nearest"
    fill: str = "none"

    def validate(self) -> None:
        super().validate()
        if self.mode not in ("nearest", "bilinear"):
            raise ValueError(f"{self.name}: mode must be nearest or bilinear, got {self.mode!r}")
        try:
            _fill_value(self.fill)
        except ValueError:
            raise ValueError(f"{self.name}: fill must be a number or none, got {self.fill!r}") from None

    def slots(self) -> int:
        return 1

    def move_points(self, points, params, in_size, out_size, corners=False):
        self._no_targets()

    def move_masks(self, masks, params, ctx):
        self._no_targets()

    def _no_targets(self):
        raise NotImplementedError(f"{self.name}: masks, boxes and keypoints are not supported (nor by torchvision's "
                                  "TrivialAugmentWide, RandAugment and AutoAugment)")

    def kernel(self, images, params, ctx):
        fill, names = _fill_value(self.fill), [name for name, _, _ in self.space]
        rows_loop = ctx.gating == "subset"

        def slot(k: int):
            pick, m = params[f"op{k}"], params[f"magnitude{k}"]
            alone = [(i, lambda x, idx, name=name: apply_one(name, x, take(m, idx), self.mode, fill, rows_loop))
                     for i, name in enumerate(names) if name != "Identity" and name not in JOINT]
            joint = [(tuple(i for i, name in enumerate(names) if JOINT.get(name) == kind),
                      lambda x, idx, kind=kind: apply_joint(kind, x, take(pick, idx), take(m, idx), names, self.mode,
                                                            fill, rows_loop))
                     for kind in dict.fromkeys(JOINT.values())]
            return pick, alone + joint
        return per_row_steps(images, (slot(k) for k in range(self.slots())), ctx)


@dataclass
class _Binned(_AutoAugment):
    """TrivialAugmentWide and RandAugment: each slot draws its op uniformly from the space, its
    magnitude from `bins` bins (`level`), and a sign."""
    bins: int = 31

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.bins, int) and self.bins >= 2):
            raise ValueError(f"{self.name}: bins must be an integer >= 2, got {self.bins!r}")

    def level(self, n: int, ctx) -> torch.Tensor:
        """The magnitude bin of each sample: drawn (TrivialAugment) or fixed (RandAugment)."""
        raise NotImplementedError

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        h, w = ctx.in_size
        for slot in range(self.slots()):
            pick = sampling.uniform(n, 0.0, len(self.space), ctx.generator, ctx.device).floor_().clamp_max_(
                len(self.space) - 1).to(torch.int64)
            level = self.level(n, ctx)
            negative = sampling.uniform(n, 0.0, 1.0, ctx.generator, ctx.device) <= 0.5
            magnitude = torch.zeros(n, device=ctx.device)
            for k, (_, magnitudes, signed) in enumerate(self.space):
                if magnitudes is None:
                    continue
                value = magnitudes(self.bins, h, w, ctx.device).to(torch.float32).gather(0, level)
                value = torch.where(negative, -value, value) if signed else value
                magnitude = torch.where(pick == k, value, magnitude)
            params[f"op{slot}"], params[f"magnitude{slot}"] = pick, magnitude
        return params


@register_op
@dataclass
class TrivialAugmentWide(_Binned):
    """`trivial_augment(bins=31, mode=nearest, fill=none, p=1)`: TrivialAugmentWide; one op per
    sample, its magnitude bin uniform, signed ops negated with probability 1/2."""
    name: ClassVar[str] = "trivial_augment"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("TrivialAugmentWide",),
        from_torchvision=lambda t, conv: TrivialAugmentWide(bins=t.num_magnitude_bins, mode=conv.interpolation(t),
                                                            fill=conv.auto_fill(t)),
        to_torchvision=lambda op, v2: v2.maybe(op, v2.lib.TrivialAugmentWide(op.bins, v2.interpolation(op),
                                                                             v2.fill_or_none(op))),
        kornia=lambda op, k: k.lib.auto.TrivialAugment(),
        # one draw per batch: torchaug has no per-sample form
        torchaug=lambda op, ta: ta.lib.TrivialAugmentWide(op.bins, ta.interpolation(op), ta.fill_or_none(op)))
    positional: ClassVar[tuple[str, ...]] = ("p",)
    space: ClassVar[list] = TRIVIAL_SPACE

    def level(self, n, ctx):
        return sampling.uniform(n, 0.0, self.bins, ctx.generator, ctx.device).floor_().clamp_max_(
            self.bins - 1).to(torch.int64)


@register_op
@dataclass
class RandAugment(_Binned):
    """`rand_augment(num_ops=2, magnitude=9, bins=31, mode=nearest, fill=none, p=1)`: RandAugment;
    `num_ops` ops per sample in a row, each at magnitude bin `magnitude`, signed at random."""
    name: ClassVar[str] = "rand_augment"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandAugment",),
        from_torchvision=lambda t, conv: RandAugment(num_ops=t.num_ops, magnitude=t.magnitude,
                                                     bins=t.num_magnitude_bins, mode=conv.interpolation(t),
                                                     fill=conv.auto_fill(t)),
        to_torchvision=lambda op, v2: v2.maybe(op, v2.lib.RandAugment(op.num_ops, op.magnitude, op.bins,
                                                                      v2.interpolation(op), v2.fill_or_none(op))),
        kornia=lambda op, k: k.lib.auto.RandAugment(n=op.num_ops, m=op.magnitude),
        torchaug=lambda op, ta: ta.lib.RandAugment(op.num_ops, op.magnitude, op.bins, ta.interpolation(op),
                                                   ta.fill_or_none(op)))
    positional: ClassVar[tuple[str, ...]] = ("num_ops", "magnitude")
    space: ClassVar[list] = RANDAUGMENT_SPACE
    num_ops: int = 2
    magnitude: int = 9

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.num_ops, int) and 1 <= self.num_ops <= 8):
            raise ValueError(f"rand_augment: num_ops must be an integer in [1, 8], got {self.num_ops!r}")
        if not (isinstance(self.magnitude, int) and 0 <= self.magnitude < self.bins):
            raise ValueError(f"rand_augment: magnitude must be an integer in [0, bins), got {self.magnitude!r}")

    def slots(self) -> int:
        return self.num_ops

    def level(self, n, ctx):
        return torch.full((n,), self.magnitude, dtype=torch.int64, device=ctx.device)




@register_op
@dataclass
class AutoAugment(_AutoAugment):
    """`auto_augment(policy=imagenet, mode=nearest, fill=none, p=1)`: AutoAugment with one of its
    learned policies (`imagenet`, `cifar10`, `svhn`): each sample draws one of the 25 sub-policies,
    whose two steps each apply with their own probability at their own magnitude bin (of 10),
    signed ops negated with probability 1/2 (torchvision's draws, per sample)."""
    name: ClassVar[str] = "auto_augment"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("AutoAugment",),
        from_torchvision=lambda t, conv: AutoAugment(policy=t.policy.value, mode=conv.interpolation(t),
                                                     fill=conv.auto_fill(t)),
        to_torchvision=lambda op, v2: v2.maybe(op, v2.lib.AutoAugment(v2.lib.AutoAugmentPolicy(op.policy),
                                                                      v2.interpolation(op), v2.fill_or_none(op))),
        kornia=lambda op, k: k.lib.auto.AutoAugment(op.policy),
        torchaug=lambda op, ta: ta.lib.AutoAugment(ta.lib.AutoAugmentPolicy(op.policy), ta.interpolation(op),
                                                   ta.fill_or_none(op)))
    positional: ClassVar[tuple[str, ...]] = ("policy",)
    space: ClassVar[list] = AUTOAUGMENT_SPACE
    policy: str = "imagenet"

    def validate(self) -> None:
        super().validate()
        if self.policy not in POLICIES:
            raise ValueError(f"auto_augment: policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")

    def slots(self) -> int:
        return 2

    def _magnitudes(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        """[len(space) * 10]: every entry's 10 magnitudes (zeros where it has none), flattened."""
        zeros = torch.zeros(10, dtype=like.dtype, device=like.device)
        return torch.cat([zeros if fn is None else fn(10, h, w, like.device).to(like.dtype)
                          for _, fn, _ in self.space])

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        names = [entry[0] for entry in self.space]
        table = POLICIES[self.policy]
        like_int = torch.empty(0, dtype=torch.int64, device=ctx.device)
        like = torch.empty(0, dtype=torch.float32, device=ctx.device)
        magnitudes = self._magnitudes(*ctx.in_size, like)
        signed = self.constant([float(entry[2]) for entry in self.space], like)
        chosen = sampling.uniform(n, 0.0, len(table), ctx.generator, ctx.device).floor_().clamp_max_(
            len(table) - 1).to(torch.int64)
        params["sub_policy"] = chosen
        for slot in range(2):
            steps = [sub_policy[slot] for sub_policy in table]
            op = self.constant([names.index(name) for name, _, _ in steps], like_int).gather(0, chosen)
            flat = self.constant([names.index(name) * 10 + (m or 0) for name, _, m in steps], like_int)
            applied = sampling.uniform(n, 0.0, 1.0, ctx.generator, ctx.device) <= self.constant(
                [probability for _, probability, _ in steps], like).gather(0, chosen)
            negative = (sampling.uniform(n, 0.0, 1.0, ctx.generator, ctx.device) <= 0.5) & (signed.gather(0, op) > 0)
            magnitude = magnitudes.gather(0, flat.gather(0, chosen))
            params[f"op{slot}"] = torch.where(applied, op, torch.zeros_like(op))  # 0: Identity
            params[f"magnitude{slot}"] = torch.where(negative, -magnitude, magnitude)
        return params
