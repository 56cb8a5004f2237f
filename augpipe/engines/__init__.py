"""The same policy on other engines: stock Kornia, torchvision (per image), DALI.

Each engine module exposes `build(policy) -> callable(uint8 images [N,3,H,W]) -> list of views`,
translating every op of our policy to that library's own operator with the same parameters. Used
by the benchmark (augpipe against the stock libraries) and by the parity tests. An op that the
engine cannot express raises `Unsupported`, naming the op.
"""
from __future__ import annotations

import importlib
from typing import Callable

ENGINES = ("augpipe", "kornia", "torchvision", "dali")


class Unsupported(NotImplementedError):
    """The engine has no equivalent for an op or option of the policy."""


def build(engine: str, policy, **options) -> Callable:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    if engine == "augpipe":
        return policy
    module = importlib.import_module(f"augpipe.engines.{engine}_engine")
    return module.build(policy, **options)
