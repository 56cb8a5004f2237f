"""One timer type for every measurement in the project (bench-aug, bench-load, training loop).

A tiny shared module so that `loaders` and `augpipe` can both use it without importing each
other (see DESIGN.md: shared helpers go to a lower, tiny module, never to a cross-import).
"""
from timekeep.timer import IntervalLog, SyncTimer, TimeAccount, sync

__all__ = ["IntervalLog", "SyncTimer", "TimeAccount", "sync"]
