"""Forking worker processes safely after other engines have run in this process.

FFCV's `.beton` writer and torch's DataLoader fork worker processes. A fork copies every Python
object of the parent, garbage included; if the child's garbage collector then finalises one of
them (a DALI pipeline left over from an earlier loader), the finalizer waits for threads that
exist only in the parent, and the child hangs forever, and with it the parent that waits for
it (seen: `Pipeline.__del__` inside a forked FFCV writer). So the parent collects its garbage
and freezes what is left (`gc.freeze`: the child's collector never looks at inherited objects)
while the workers are forked.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def fork_safe() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
