"""torch.compile handling: every compiled function gets its own graph cache."""
from __future__ import annotations

import types


def own_code(fn):
    """`fn` (a function or a bound method) as a copy with its own code object. torch.compile
    caches graphs, and counts recompiles against a limit of 8 before falling back to eager, per
    code object; every policy (and every engine chain) is a different graph, so each gets its
    own cache instead of evicting the others' or silently running eager."""
    func = getattr(fn, "__func__", fn)
    copy = types.FunctionType(func.__code__.replace(), func.__globals__, func.__name__, func.__defaults__,
                              func.__closure__)
    return types.MethodType(copy, fn.__self__) if hasattr(fn, "__self__") else copy


class LazyCompiled:
    """`torch.compile(own_code(fn), fullgraph=True)`, made on the first call (compiling is costly
    and most policies never compile)."""

    def __init__(self, fn, **options):
        self.fn, self.options, self.compiled = fn, {"fullgraph": True, **options}, None

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            import torch
            self.compiled = torch.compile(own_code(self.fn), **self.options)
        return self.compiled(*args, **kwargs)
