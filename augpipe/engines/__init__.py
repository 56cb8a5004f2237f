"""The same policy on other engines: stock Kornia, torchvision (per image), DALI, and compiled.

`build(engine, policy, **options)` returns `run(images, generator=None) -> list of views`
(uint8 `[N,3,H,W]` or float in [0, 1] in, one float tensor per view out), translating every op
of our policy to that engine's own operator with the same parameters:

- `augpipe`: the policy itself (its device default: see `Policy`);
- `augpipe-eager`: the policy never compiled (its device's gating); `augpipe-compiled`: always
  `torch.compile(apply, fullgraph=True)` with blend gating;
- `kornia`: one stock `AugmentationSequential` per view; `kornia-compiled`: that under torch.compile;
- `torchvision`: the v2 chain image by image, as in a DataLoader worker;
- `dali`: DALI's own operators (CPU here, GPU where CUDA exists).

Only augpipe draws from `generator`; the others draw from their own (torch's global) random
state, which the training loop seeds per epoch. An op that the engine cannot express raises
`Unsupported`, naming the op. Used by the benchmark, the parity tests and `ssl_train --aug-engine`.
"""
from __future__ import annotations

import importlib
from typing import Callable

ENGINES = ("augpipe", "augpipe-eager", "augpipe-compiled", "kornia", "kornia-compiled", "torchvision", "dali")


class Unsupported(NotImplementedError):
    """The engine has no equivalent for an op or option of the policy."""


def _augpipe(policy, variant: str, **_):
    if variant == "compiled":
        return policy.with_options(gating="blend", compile=True)
    return policy.with_options(compile=False) if variant == "eager" else policy


def build(engine: str, policy, **options) -> Callable:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    base, _, variant = engine.partition("-")
    if base == "augpipe":
        return _augpipe(policy, variant, **options)
    module = importlib.import_module(f"augpipe.engines.{base}_engine")
    run = module.build(policy, **options)
    if variant == "compiled":
        import torch
        from augpipe.policy import own_code
        run = torch.compile(own_code(run))  # its own graph cache: one per built chain
    return run
