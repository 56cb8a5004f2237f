"""The `Engine` contract: one policy, run by another library's operators, same semantics.

An engine has a `name`, the `ops` it can translate (by spec-string name; None for every op), and
`build(policy, **options) -> Runner`. A `Runner` is what every caller gets, whatever the engine:
`runner(images, generator=None) -> list of views`, plus `op_seconds()` / `reset_timing()` (per-op
seconds where the engine can time ops: augpipe; `{}` elsewhere, the phase total then stands).
Translated engines keep one table per engine, op name -> a function making that library's
operator; an op missing from the table is refused in one line naming the engine and the op.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch


class Unsupported(NotImplementedError):
    """The engine has no equivalent for an op or option of the policy."""


@dataclass
class Runner:
    """A policy bound to an engine: call it like a policy (`generator` drives augpipe only;
    the other engines draw from their own, torch's global, random state)."""
    engine: str
    policy: object  # the augpipe Policy whose semantics it runs
    run: Callable
    native: bool = False  # runs augpipe's own policy: per-op timing, sync counts

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        return self.run(images, generator=generator)

    def op_seconds(self) -> dict[str, float]:
        return self.policy.op_seconds() if self.native else {}

    def reset_timing(self) -> None:
        if self.native:
            self.policy.reset_timing()


class Engine(Protocol):
    name: str

    @property
    def ops(self) -> frozenset[str] | None: ...

    def build(self, policy, **options) -> Runner: ...


def check_supported(engine: str, table, policy) -> None:
    """Unsupported (one line) for the first op of `policy` that `table` cannot translate."""
    for view in policy.views:
        for op in view.ops:
            if op.name not in table:
                raise Unsupported(f"{engine}: cannot run op {op.name!r} (it translates: {', '.join(sorted(table))}); "
                                  "use --aug-engine augpipe")
