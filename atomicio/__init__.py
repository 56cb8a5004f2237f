"""Atomic file writes, shared by every package (a tiny leaf like `timekeep`: docs/ARCHITECTURE.md).

`atomic_write(path, write)` calls `write(tmp)` on a temporary file next to `path` (named
`.NAME.*.tmp`), gives it the usual permissions (`0666 & ~umask`, not `mkstemp`'s 0600) and renames
it over `path`: a reader sees the old file or the new one, never half of one. A write killed
midway (kill -9) leaves its temporary behind; `remove_stale_temporaries` deletes them, and since
they never carry the final name nothing ever reads them as data.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, write)


def remove_stale_temporaries(folder: str | os.PathLike, name: str = "*") -> list[Path]:
    """Delete the `.NAME.*.tmp` files that killed writes left in `folder`; returns them."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for tmp in folder.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_text(text: str, path: str | os.PathLike) -> Path:
    """`text` into `path`, atomically."""
    return atomic_write_bytes(path, text.encode())


def write_json(data, path: str | os.PathLike) -> Path:
    """`data` as indented JSON (one trailing newline) into `path`, atomically."""
    return write_text(json.dumps(data, indent=1) + "\n", path)
