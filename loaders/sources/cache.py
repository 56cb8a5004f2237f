"""The cache every source writes into once (`$AUGPIPE_CACHE`, default `~/.cache/augpipe`):
unpacked archives, the embedded digits, downloads, unpacked shards, `.beton` files."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("AUGPIPE_CACHE", Path.home() / ".cache" / "augpipe"))


def written_once(final: Path, write) -> Path:
    """`final`, made by `write(folder)` into a temporary folder beside it that is then renamed into
    place: a crash never leaves half of it, and concurrent first uses (DDP ranks) are safe."""
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        write(tmp)
        os.rename(tmp, final)
    except OSError:
        if not final.exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
