"""The `Engine` contract: one policy, run by another library's operators, same semantics.

An engine has a `name`, the `ops` it can translate (by spec-string name; None for every op), and
`build(policy, **options) -> Runner`. A `Runner` is what every caller gets, whatever the engine:
`runner(images, generator=None) -> list of views`, plus `op_seconds()` / `reset_timing()` (per-op
seconds where the engine can time ops: augpipe; `{}` elsewhere, the phase total then stands).
A translated engine keeps no table of ops: each op declares its counterpart in that library
(`Op.counterparts`, one entry per engine key), called as `(op, target)` with the engine's `Target`;
an op without one is refused in one line naming the engine and the op.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Protocol

import torch

from augpipe.ops import OPS


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


def translations(key: str) -> dict[str, Callable]:
    """Op name -> its `key` counterpart, for every registered op that declares one."""
    return {name: getattr(cls.counterparts, key) for name, cls in OPS.items()
            if getattr(cls.counterparts, key) is not None}


def counterpart(engine: str, key: str, op) -> Callable:
    """`op`'s `key` counterpart, or Unsupported (one line) naming the engine and the op."""
    translate = getattr(type(op).counterparts, key)
    if translate is None:
        raise Unsupported(f"{engine}: cannot run op {op.name!r} (it translates: {', '.join(sorted(translations(key)))}); "
                          "use --aug-engine augpipe")
    return translate


def check_supported(engine: str, key: str, policy) -> None:
    """Unsupported (one line) for the first op of `policy` with no `key` counterpart."""
    for view in policy.views:
        for op in view.ops:
            counterpart(engine, key, op)


@dataclass
class Target:
    """What an op's translation gets besides the op: the library, the view size, the batch size."""
    engine: str
    lib: Any
    size: tuple[int, int]
    batch: int | None = None

    def unsupported(self, what: str) -> NoReturn:
        raise Unsupported(f"{self.engine}: {what}")

    def translate(self, key: str, op):
        return counterpart(self.engine, key, op)(op, self)
