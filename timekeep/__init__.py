"""One timer type for every measurement in the project (bench-aug, bench-load, training loop).

A tiny shared module so that `loaders` and `augpipe` can both use it without importing each
other (see DESIGN.md: shared helpers go to a lower, tiny module, never to a cross-import).
"""
from timekeep.timer import SyncTimer, TimeAccount, sync

__all__ = ["SyncTimer", "TimeAccount", "sync"]
