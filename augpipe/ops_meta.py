"""Ops made of ops: torchvision's `RandomChoice` and `RandomOrder`, per sample, fixed shapes.

Each sub-op draws its parameters for every row (so shapes never depend on the choice); the
choice (or order) is a per-sample tensor, and each row keeps the result of the sub-op it drew via
`torch.where`. Every branch runs on every row: no host read, `torch.compile(fullgraph=True)` takes
it, at the cost of running the branches a row did not choose. Sub-ops keep the view's size (a
crop inside a choice would give rows of different sizes). Built in Python or by
`from_torchvision`; spec strings have no grammar for nested ops.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from augpipe import sampling
from augpipe.gating import gate
from augpipe.op import Op


def _sub_params(params: dict, i: int) -> dict:
    prefix = f"{i}."
    return {key[len(prefix):]: value for key, value in params.items() if key.startswith(prefix)}


def _check_ops(kind: str, ops: list) -> None:
    if not ops or not all(isinstance(op, Op) for op in ops):
        raise ValueError(f"{kind}: ops must be a non-empty list of augpipe ops, got {ops!r}")
    sized = [op.name for op in ops if op.changes_size]
    if sized:
        raise ValueError(f"{kind}: size-changing ops ({', '.join(sized)}) cannot be chosen per sample")
    for op in ops:
        op.validate()


@dataclass
class OneOf(Op):
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
        out = images
        for i, op in enumerate(self.ops):
            chosen = (params["choice"] == i) & params["apply"]
            result = gate(op, images, _sub_params(params, i), ctx.but(inplace=False), "blend")
            out = torch.where(chosen.view(-1, 1, 1, 1), result, out)
        return out


@dataclass
class InRandomOrder(Op):
    """RandomOrder: each sample runs all `ops`, in its own random order."""
    name: ClassVar[str] = "random_order"
    gated: ClassVar[bool] = False
    ops: list = field(default_factory=list)

    def validate(self) -> None:
        super().validate()
        _check_ops(self.name, self.ops)

    def spec(self) -> str:
        return f"random_order({' | '.join(op.spec() for op in self.ops)})"

    def sample(self, n, ctx):
        params = {"apply": sampling.bernoulli(n, self.p, ctx.generator, ctx.device),
                  "order": sampling.permutations(n, len(self.ops), ctx.generator, ctx.device)}
        for i, op in enumerate(self.ops):
            params.update({f"{i}.{key}": value for key, value in op.sample(n, ctx).items()})
        return params

    def kernel(self, images, params, ctx):
        out = images
        for step in range(len(self.ops)):  # at each step every op runs, each row keeps its own op's
            current = out
            for i, op in enumerate(self.ops):
                chosen = (params["order"][:, step] == i) & params["apply"]
                result = gate(op, current, _sub_params(params, i), ctx.but(inplace=False), "blend")
                out = torch.where(chosen.view(-1, 1, 1, 1), result, out)
        return out
