"""Erasing (torchvision's RandomErasing): a box per sample, drawn as torchvision draws it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch

from augpipe import functional, sampling
from augpipe.functional import loops_pay
from augpipe.ops._base import Counterparts, Op, Range, check_range, register_op

_VALUE = re.compile(r"^(random|-?[\d.]+(/-?[\d.]+){0,2})$")


@register_op
@dataclass
class Erasing(Op):
    """`erasing(p=0.5, scale=0.02:0.33, ratio=0.3:3.3, value=0)`: RandomErasing. `value` is a
    number, three numbers `r/g/b`, or `random` (per-pixel standard normal draws, as torchvision's
    `value=None`, which are not clipped to [0, 1])."""
    name: ClassVar[str] = "erasing"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("RandomErasing",),
        from_torchvision=lambda t, conv: Erasing(p=t.p, scale=tuple(t.scale), ratio=tuple(t.ratio), value=(
            "random" if t.value is None else "/".join(f"{float(v):g}" for v in t.value))),
        to_torchvision=lambda op, v2: v2.lib.RandomErasing(p=op.p, scale=op.scale, ratio=op.ratio, value=(
            "random" if op.value == "random" else [float(v) for v in op.value.split("/")])),
        kornia=lambda op, k: k.lib.RandomErasing(scale=op.scale, ratio=op.ratio, value=float(op.value), p=op.p)
        if _one_number(op.value) else k.unsupported(f"erasing value {op.value!r} (Kornia erases with one number)"),
        torchaug=lambda op, ta: ta.lib.RandomErasing(p=op.p, scale=op.scale, ratio=op.ratio, value=float(op.value),
                                                     num_chunks=ta.batch, batch_transform=True)
        if _one_number(op.value) else ta.unsupported("erasing with a per-pixel or per-channel value"))
    positional: ClassVar[tuple[str, ...]] = ("p",)
    gated: ClassVar[bool] = False  # the box is empty where the coin says no or no try fitted
    p: float = 0.5
    scale: Range = (0.02, 0.33)
    ratio: Range = (0.3, 3.3)
    value: str = "0"

    def validate(self) -> None:
        super().validate()
        check_range(self.name, "scale", self.scale, 0.0, 1.0)
        check_range(self.name, "ratio", self.ratio, 1e-6)
        if not _VALUE.match(self.value):
            raise ValueError(f"erasing: value must be a number, r/g/b or random, got {self.value!r}")

    def sample(self, n, ctx):
        params = super().sample(n, ctx)
        h, w = ctx.in_size
        boxes, found = sampling.erasing_boxes(n, h, w, self.scale, self.ratio, ctx.generator, ctx.device)
        params["boxes"] = torch.where((params["apply"] & found)[:, None], boxes, torch.zeros_like(boxes))
        if self.value == "random":
            params["values"] = sampling.normal((n * ctx.frames, 3, h, w), ctx.generator, ctx.device)
        return params

    def frame_keys(self):
        return frozenset({"values"}) if self.value == "random" else frozenset()

    def kernel(self, images, params, ctx):
        values = params.get("values")
        if values is None:
            channels = [float(v) for v in self.value.split("/")]
            values = self.constant(channels * (3 if len(channels) == 1 else 1), images).view(1, 3, 1, 1)
        if ctx.gating == "subset" and (ctx.inplace or loops_pay(images.shape)):
            # the CPU path: only the boxes are written (a copy first costs more than a mask on small images)
            return functional.erase_rows(images, params["boxes"], values, inplace=ctx.inplace)
        return functional.erase(images, params["boxes"], values)


def _one_number(value: str) -> bool:
    """An erasing value of one number (not `random`, not r/g/b): what Kornia and torchaug take."""
    return value != "random" and "/" not in value
