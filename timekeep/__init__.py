"""The project's timers, one module for every measurement (bench-aug, bench-load, training loop):
`SyncTimer` times one region, `TimeAccount` sums named phases (CUDA events read once on the GPU).

A tiny shared module so that `loaders` and `augpipe` can both use it without importing each
other (docs/ARCHITECTURE.md: shared helpers go to a lower, tiny module, never to a cross-import).
"""
from timekeep.timer import SyncTimer, TimeAccount, sync

__all__ = ["SyncTimer", "TimeAccount", "sync"]
