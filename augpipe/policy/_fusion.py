"""Fused op pairs: two consecutive ops that run as one kernel, looked up by their exact classes.

A crop (or the implied resize) directly followed by a horizontal flip is one `grid_sample`: the
flip reads the crop's sampling grid backwards, which equals `F.horizontal_flip` of the crop
exactly (tests/augpipe/functional/test_kernels.py). The table is keyed by class, not by name or subclass: an
op registered in place of a built-in (`register_op(replace=True)`) is never fused by mistake.
"""
from __future__ import annotations

from typing import Callable

import torch

from augpipe import functional
from augpipe.ops import ApplyContext, HorizontalFlip, Op, RandomResizedCrop, Resize

Fused = Callable[[Op, dict, Op, dict, torch.Tensor, ApplyContext], torch.Tensor]


def _crop_then_flip(crop: Op, crop_params: dict, flip: Op, flip_params: dict, images: torch.Tensor,
                    ctx: ApplyContext) -> torch.Tensor:
    mirrored = flip_params["apply"] if flip.p > 0 else None
    return functional.resized_crop(images, crop_params["boxes"], ctx.out_size, flip=mirrored, antialias=crop.antialias)


FUSED: dict[tuple[type[Op], type[Op]], Fused] = {
    (RandomResizedCrop, HorizontalFlip): _crop_then_flip,
    (Resize, HorizontalFlip): _crop_then_flip,
}


def fused_pair(ops: list[Op], i: int) -> Fused | None:
    """The fused kernel of `ops[i]` and `ops[i + 1]`, or None."""
    return FUSED.get((type(ops[i]), type(ops[i + 1]))) if i + 1 < len(ops) else None
