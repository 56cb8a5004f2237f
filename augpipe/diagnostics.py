"""Count what a call costs on a GPU, measured on any device: aten compute ops (kernel launches)
and ops that force a device->host synchronisation on CUDA.

    counts = count_ops(lambda: policy(images, generator=g))
    counts.syncs   # {"nonzero": 40, ...}; 0 on the blend path
    counts.ops     # compute ops, view-like ops (no kernel) excluded

The same counter backs `tests/augpipe/policy/test_syncs.py` and the `syncs_per_call` / `ops_per_call` fields of
`make bench-aug`. On CUDA, `torch.cuda.set_sync_debug_mode` is the ground truth; this counter
sees the same ops on the CPU, where CI runs.
"""
from __future__ import annotations

import collections
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = frozenset({"nonzero", "_local_scalar_dense", "item", "masked_select", "unique", "_unique2",
                      "unique_dim", "unique_consecutive", "is_nonzero", "equal", "allclose"})
VIEW_OPS = frozenset({"view", "_unsafe_view", "expand", "unsqueeze", "squeeze", "permute", "t", "transpose",
                      "select", "slice", "unbind", "alias", "as_strided", "detach", "lift_fresh", "reshape",
                      "split", "chunk", "_reshape_alias", "view_as", "expand_as", "unfold", "diagonal",
                      "split_with_sizes"})


@dataclass
class OpCounts:
    by_name: collections.Counter = field(default_factory=collections.Counter)

    @property
    def syncs(self) -> dict[str, int]:
        return {k: v for k, v in self.by_name.items() if k in SYNC_OPS}

    @property
    def sync_count(self) -> int:
        return sum(self.syncs.values())

    @property
    def ops(self) -> int:
        return sum(v for k, v in self.by_name.items() if k not in VIEW_OPS)


class _Counter(TorchDispatchMode):
    def __init__(self, counts: OpCounts):
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts.by_name[func.__name__.split(".")[0]] += 1
        return func(*args, **(kwargs or {}))


class count_dispatch:
    """Context manager: `with count_dispatch() as counts: ...` counts every aten call inside."""

    def __init__(self):
        self.counts = OpCounts()
        self._mode = _Counter(self.counts)

    def __enter__(self) -> OpCounts:
        self._mode.__enter__()
        return self.counts

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)


def count_ops(fn: Callable[[], object]) -> OpCounts:
    """Counts of one call of `fn` (call it once before, to leave one-time setup out).

    Compiled code is counted as its eager graph (a dispatch mode and torch.compile do not mix):
    the same aten ops, before the compiler fuses them.
    """
    import torch
    eager = torch.compiler.set_stance("force_eager") if hasattr(torch.compiler, "set_stance") else nullcontext()
    with eager, count_dispatch() as counts:
        fn()
    return counts
