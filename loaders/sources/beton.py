"""FFCV `.beton` files written from an ImageFolder scan, atomically, with a sidecar JSON.

Every image is decoded with the reference Pillow decoding (`loaders.sources.decode`: any mode to
RGB), optionally downscaled so its longer side is at most `max_resolution`, and stored raw (exact
pixels) when its side is at most 64 px, else as JPEG (quality 95). The file is written under a
temporary name and renamed when complete. Beside it, `DST.json` records the class names, the
source scan, and the file's size and SHA-256: the FFCV backend restores the classes from it and
refuses a damaged file. Written by `python -m loaders.prepare` and, once per folder into the
cache, by the FFCV backend.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from _augpipe_shared.atomicio import atomic_write, remove_stale_temporaries
from loaders.sources.decode import center_resized, load_rgb
from loaders.sources.forking import fork_safe
from loaders.sources.scan import DatasetError, ImageIndex

RAW_MAX_SIDE = 64


class _Decoded:
    """Indexable (image HWC uint8, label) view of a scan, for FFCV's writer. With `square`, each
    image is stored as the torch backend's own centre square of that side (`center_resized`):
    FFCV's centre-crop decoder then only copies it, and the pixels equal the torch backend's."""

    def __init__(self, index: ImageIndex, max_resolution: int | None, square: int | None = None):
        self.index, self.max_resolution, self.square = index, max_resolution, square

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        from PIL import Image
        im = load_rgb(self.index.files[i])
        if self.square:
            return center_resized(im, self.square), int(self.index.labels[i])
        if self.max_resolution and max(im.size) > self.max_resolution:
            scale = self.max_resolution / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8), int(self.index.labels[i])


def write_beton(index: ImageIndex, dst: str | os.PathLike, max_resolution: int | None = None,
                num_workers: int | None = None, progress: bool = True, square: int | None = None) -> Path:
    """Write `index` to `dst` through a temporary file (stale ones from killed writes removed first)."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dst.parent, dst.name)
    decoded = _Decoded(index, max_resolution, square)
    first, _ = decoded[0]
    mode = "raw" if max(first.shape[:2]) <= RAW_MAX_SIDE else "jpg"

    def write(tmp):
        writer = DatasetWriter(tmp, {"image": RGBImageField(write_mode=mode, max_resolution=max_resolution,
                                                           jpeg_quality=95),
                                     "label": IntField()},
                               num_workers=num_workers or min(4, os.cpu_count() or 1))
        import ffcv.writer
        shown = ffcv.writer.tqdm  # FFCV's writer has no switch for its bar: lend it a silent one
        if not progress:
            ffcv.writer.tqdm = functools.partial(shown, disable=True)
        try:
            with fork_safe():  # FFCV forks its writer processes
                writer.from_indexed_dataset(decoded)
        finally:
            ffcv.writer.tqdm = shown
    atomic_write(dst, write)
    validate_beton(dst, len(index))
    description = describe_beton(dst, index, max_resolution)
    atomic_write(sidecar_path(dst), lambda tmp: Path(tmp).write_text(json.dumps(description, indent=1) + "\n"))
    return dst


SIDECAR_VERSION = 1


def sidecar_path(beton: Path) -> Path:
    """Where a `.beton`'s description lives: `NAME.beton.json` beside it."""
    return beton.with_name(beton.name + ".json")


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def beton_samples(path: Path) -> int:
    """The number of samples of a structurally sound `.beton` (FFCV's header parses, its
    allocation table stays inside the file), else one `DatasetError` naming the file."""
    try:
        from ffcv.reader import Reader
        reader = Reader(str(path))
        alloc = reader.alloc_table
        if len(alloc) and int((alloc["ptr"].astype("int64") + alloc["size"].astype("int64")).max()) > \
                path.stat().st_size:
            raise ValueError("allocation table points past the end of the file")
        return int(reader.num_samples)
    except Exception as err:  # FFCV raises many types on malformed headers
        reason = " ".join(str(err).split())[:120] or type(err).__name__
        raise DatasetError(f"{path}: not a readable .beton ({type(err).__name__}: {reason})") from None


def validate_beton(path: Path, expected: int) -> None:
    """Re-read what was written; a file that does not read back as `expected` samples is removed."""
    try:
        found = beton_samples(path)
        if found != expected:
            raise DatasetError(f"{path}: {found} samples where {expected} were written")
    except DatasetError as err:
        path.unlink(missing_ok=True)
        raise DatasetError(f"the written .beton does not read back, so it was removed: {err}") from None


def describe_beton(beton: Path, index: ImageIndex, max_resolution: int | None) -> dict:
    """What the `.beton` holds: class names, the source scan, and its size and SHA-256 (so that a
    damaged or swapped file is caught when opened, before FFCV reads garbage or hangs)."""
    return {"version": SIDECAR_VERSION, "classes": list(index.classes), "num_samples": len(index),
            "source": str(index.root), "skipped": [f for f, _ in index.skipped], "max_resolution": max_resolution,
            "bytes": beton.stat().st_size, "sha256": file_digest(beton)}
