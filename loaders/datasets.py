"""Embedded datasets: real data that needs no download, materialised once as an ImageFolder.

`digits`: scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, 10 classes), upsampled
to 32x32 RGB PNGs. Every 5th image of each class goes to `test/`, the rest to `train/`.
Names: `digits` (= `digits:train`) and `digits:test`. Files are written to a temporary folder and
renamed into the cache (`$AUGPIPE_CACHE`, default `~/.cache/augpipe`), so a crash never leaves a
half-written dataset and concurrent first uses (DDP ranks) are safe.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

EMBEDDED = ("digits",)
DIGITS_SIZE = 32


def cache_dir() -> Path:
    return Path(os.environ.get("AUGPIPE_CACHE", Path.home() / ".cache" / "augpipe"))


def _write_digits(dest: Path) -> None:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0 * 255.0).round().astype(np.uint8)
    seen: dict[int, int] = {}
    for i, (img, label) in enumerate(zip(images, data.target)):
        k = seen.get(int(label), 0)
        seen[int(label)] = k + 1
        split = "test" if k % 5 == 4 else "train"
        folder = dest / split / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        big = Image.fromarray(img, "L").resize((DIGITS_SIZE, DIGITS_SIZE), Image.BILINEAR).convert("RGB")
        big.save(folder / f"{i:04d}.png")


def materialize(name: str) -> Path:
    """Path of the embedded dataset `name` (with train/ and test/), writing it on first use."""
    if name not in EMBEDDED:
        raise ValueError(f"unknown embedded dataset {name!r}; valid: {', '.join(EMBEDDED)}")
    return written_once(cache_dir() / f"{name}-v1", _write_digits)


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


def _extract(archive: Path, folder: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")  # members that would land outside the folder are refused


def unpacked(archive: Path, cache: Path) -> Path:
    """The folder a `.tar` / `.tar.gz` archive unpacks to, under `cache` (named after the archive),
    unpacked once (`written_once`)."""
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such archive")
    return written_once(Path(cache) / archive.name.split(".")[0], lambda folder: _extract(archive, folder))


def resolve_source(source: str | os.PathLike) -> Path:
    """`digits` / `digits:test` -> the embedded split's folder; anything else is a path."""
    text = str(source)
    name, _, split = text.partition(":")
    if name in EMBEDDED and not Path(text).exists():
        split = split or "train"
        if split not in ("train", "test"):
            raise ValueError(f"{text!r}: split must be train or test")
        return materialize(name) / split
    return Path(source)
