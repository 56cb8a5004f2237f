"""Forking worker processes safely after other engines have run in this process.

FFCV's `.beton` writer and torch's DataLoader fork worker processes. A fork copies every Python
object of the parent, garbage included; if the child's garbage collector then finalises one of
them (a DALI pipeline left over from an earlier loader), the finalizer waits for threads that
exist only in the parent, and the child hangs forever, and with it the parent that waits for
it (seen: `Pipeline.__del__` inside a forked FFCV writer). So the parent freezes its objects,
garbage included, while the workers are forked (`gc.freeze`: the child's collector never looks
at inherited objects, so it finalises none of them; the parent collects them as usual after
`gc.unfreeze`). No `gc.collect()` first: in a large process (a test session) it cost 0.3-0.9 s
per fork, and freezing alone keeps the child from the parent's garbage.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def fork_safe() -> Iterator[None]:
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
