"""Ops made of ops: torchvision's `RandomChoice` and `RandomOrder`, per sample, fixed shapes.

Each sub-op draws its parameters for every row (so shapes never depend on the choice); the
choice (or order) is a per-sample tensor (`per_row`). With blend gating every branch runs on every
row and each row keeps its own via `torch.where`: no host read, `torch.compile(fullgraph=True)`
takes it, at the cost of running the branches a row did not choose. With subset gating (the
CPU default) each branch runs on its own rows only. Sub-ops keep the view's size (a
crop inside a choice would give rows of different sizes). Built in Python or by
`from_torchvision`; spec strings have no grammar for nested ops.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from augpipe import sampling
from augpipe.functional import put, take
from augpipe.ops._base import Op, gate


def chosen(pick: torch.Tensor, k: int | tuple[int, ...]) -> torch.Tensor:
    """The rows whose `pick` is `k`, or any of the tuple `k` (device ops only: no host read)."""
    ks = (k,) if isinstance(k, int) else k
    mask = pick == ks[0]
    for other in ks[1:]:
        mask = mask | (pick == other)
    return mask


def per_row(images: torch.Tensor, pick: torch.Tensor, branches, ctx) -> torch.Tensor:
    """Row i of the result is that of the branch its `pick[i]` chose: each branch is `(k, fn)`
    (`k` one pick or a tuple of picks that one kernel call serves), `fn(images, idx)`
    transforming the rows `idx` (None: all). Blend: every branch on every row, `torch.where` per
    row (no host read). Subset (the CPU default): each branch on its own rows only, its result
    written back into `images` when `ctx.inplace` says they are the policy's (each branch reads
    its rows before any is written, and no two branches share a row), else into a copy."""
    if ctx.gating != "subset":
        out = images
        for k, fn in branches:
            out = torch.where(chosen(pick, k).view(-1, 1, 1, 1), fn(images, None), out)
        return out
    out = images if ctx.inplace else images.clone()
    for k, fn in branches:
        idx = chosen(pick, k).nonzero().squeeze(1)
        if idx.numel():
            put(out, idx, fn(images.index_select(0, idx), idx))
    return out


def per_row_steps(images: torch.Tensor, steps, ctx) -> torch.Tensor:
    """`per_row` once per `(pick, branches)` of `steps`, each on the previous result. From the
    second step on the rows being written are the policy's own copy, so each step after the
    first writes in place whatever `ctx.inplace` said of `images`."""
    out = images
    for pick, branches in steps:
        out = per_row(out, pick, branches, ctx.but(inplace=ctx.inplace or out is not images))
    return out


def _sub_params(params: dict, i: int) -> dict:
    prefix = f"{i}."
    return {key[len(prefix):]: value for key, value in params.items() if key.startswith(prefix)}


def _branch(op: Op, params: dict, i: int, ctx):
    """Sub-op `i` as a `per_row` branch: its kernel, gated by its own `apply`, on rows `idx`."""
    own = _sub_params(params, i)
    return lambda images, idx: gate(op, images, {k: take(v, idx) for k, v in own.items()},
                                    ctx.but(inplace=False), "blend")


def _frame_keys(ops: list[Op]) -> frozenset[str]:
    """The sub-ops' per-frame parameters, under their `i.` prefixes."""
    return frozenset(f"{i}.{key}" for i, op in enumerate(ops) for key in op.frame_keys())


class _MadeOfOps:
    """Masks, boxes and keypoints pass ops made of photometric ops; geometric choices do not move them yet."""
    ops: list

    @property
    def geometric(self) -> bool:  # as its ops are
        return any(op.geometric or op.changes_size for op in self.ops)

    def move_points(self, points, params, in_size, out_size, corners=False):
        self._photometric_only()
        return points

    def move_masks(self, masks, params, ctx):
        self._photometric_only()
        return masks

    def _photometric_only(self) -> None:
        moving = [op.name for op in self.ops if op.geometric or op.changes_size]
        if moving:
            raise NotImplementedError(f"{self.name}: moving masks, boxes or keypoints through a per-sample choice of "
                                      f"geometric ops ({', '.join(moving)}) is not supported")


def _check_ops(kind: str, ops: list) -> None:
    if not ops or not all(isinstance(op, Op) for op in ops):
        raise ValueError(f"{kind}: ops must be a non-empty list of augpipe ops, got {ops!r}")
    sized = [op.name for op in ops if op.changes_size]
    if sized:
        raise ValueError(f"{kind}: size-changing ops ({', '.join(sized)}) cannot be chosen per sample")
    for op in ops:
        op.validate()


@dataclass
class OneOf(_MadeOfOps, Op):
    """RandomChoice: each sample runs one of `ops`, drawn with `weights` (uniform when empty)."""
    name: ClassVar[str] = "one_of"
    gated: ClassVar[bool] = False
    ops: list = field(default_factory=list)
    weights: list = field(default_factory=list)

    def validate(self) -> None:
        super().validate()
        _check_ops(self.name, self.ops)
        if self.weights and (len(self.weights) != len(self.ops) or min(self.weights) < 0 or sum(self.weights) <= 0):
            raise ValueError(f"one_of: weights must be {len(self.ops)} non-negative numbers with a positive sum, "
                             f"got {self.weights}")

    def spec(self) -> str:
        weights = f", weights={'/'.join(f'{w:g}' for w in self.weights)}" if self.weights else ""
        return f"one_of({' | '.join(op.spec() for op in self.ops)}{weights})"

    def frame_keys(self):
        return _frame_keys(self.ops)

    def sample(self, n, ctx):
        weights = self.weights or [1.0] * len(self.ops)
        u = sampling.uniform(n, 0.0, 1.0, ctx.generator, ctx.device)
        choice = torch.zeros(n, dtype=torch.int64, device=ctx.device)
        for bound in itertools.accumulate(weights[:-1]):  # static bounds (Python numbers): no host read
            choice += u >= bound / sum(weights)
        params = {"apply": sampling.bernoulli(n, self.p, ctx.generator, ctx.device), "choice": choice}
        for i, op in enumerate(self.ops):
            params.update({f"{i}.{key}": value for key, value in op.sample(n, ctx).items()})
        return params

    def kernel(self, images, params, ctx):
        pick = torch.where(params["apply"], params["choice"], -1)  # -1: no branch, the row as it is
        return per_row(images, pick, [(i, _branch(op, params, i, ctx)) for i, op in enumerate(self.ops)], ctx)


@dataclass
class InRandomOrder(_MadeOfOps, Op):
    """RandomOrder: each sample runs all `ops`, in its own random order."""
    name: ClassVar[str] = "random_order"
    gated: ClassVar[bool] = False
    ops: list = field(default_factory=list)

    def validate(self) -> None:
        super().validate()
        _check_ops(self.name, self.ops)

    def spec(self) -> str:
        return f"random_order({' | '.join(op.spec() for op in self.ops)})"

    def frame_keys(self):
        return _frame_keys(self.ops)

    def sample(self, n, ctx):
        params = {"apply": sampling.bernoulli(n, self.p, ctx.generator, ctx.device),
                  "order": sampling.permutations(n, len(self.ops), ctx.generator, ctx.device)}
        for i, op in enumerate(self.ops):
            params.update({f"{i}.{key}": value for key, value in op.sample(n, ctx).items()})
        return params

    def kernel(self, images, params, ctx):
        branches = [(i, _branch(op, params, i, ctx)) for i, op in enumerate(self.ops)]
        # at each step each row runs the op its order puts there
        return per_row_steps(images, ((torch.where(params["apply"], params["order"][:, step], -1), branches)
                                      for step in range(len(self.ops))), ctx)
