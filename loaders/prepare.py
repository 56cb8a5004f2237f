"""`python -m loaders.prepare SRC DST.beton`: write an FFCV file from an ImageFolder, atomically.
(`python -m loaders.prepare SRC DST --format wds --shard-size N`: WebDataset shards instead, the
images' own bytes with a `.cls` label, `DST/index.json` holding the classes and the shard sizes;
the folder is written beside DST and renamed into place, and replaced whole: `loaders.shards`.)

Every image is decoded with the reference Pillow decoding (`loaders.decode`: any mode to RGB),
optionally downscaled so its longer side is at most `--max-resolution`, and stored raw (exact
pixels) when its side is at most 64 px, else as JPEG (quality 95). The file is written under a
temporary name next to DST and renamed when complete: an interrupted run never leaves a
half-written DST (its temporary is removed by the next write). An existing DST is replaced only
with `--overwrite`. Beside it, `DST.json` records the class names, the source scan, and the file's
size and SHA-256: `build_loader("ffcv", DST)` restores the classes and refuses a damaged file.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from _augpipe_shared.atomicio import atomic_write, exclusive, nearest_existing, remove_stale_temporaries, replace_folder
from _augpipe_shared.cli import ArgumentParser
from _augpipe_shared.plugins import add_plugin_flag, load_plugins
from loaders.datasets import resolve_source
from loaders.decode import center_resized, load_rgb
from loaders.forking import fork_safe
from loaders.scan import DatasetError, ImageIndex, scan_image_folder
from loaders.shards import INDEX, as_folder, shard_list, write_shards

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


def check_destination(dst: Path, overwrite: bool) -> str | None:
    """Why `dst` cannot be written (one line), or None."""
    if dst.is_dir():
        return f"dst {dst}: is a directory; give a file name ending in .beton"
    if dst.exists() and not overwrite:
        return f"dst {dst}: already exists; pass --overwrite to replace it"
    if dst.exists() and not sidecar_path(dst).exists():  # --overwrite replaces prepared files only
        return (f"dst {dst}: exists and was not written by loaders.prepare (no {sidecar_path(dst).name} beside it); "
                "--overwrite replaces only files it wrote: choose another dst or move it away")
    return _place_problem(dst)


def _place_problem(dst: Path) -> str | None:
    """Why nothing can be written at `dst`: the nearest existing folder above it is a file, or not writable."""
    folder = nearest_existing(dst.parent)
    if not folder.is_dir():
        return f"dst {dst}: {folder} is a file, so no folder can be made there"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"dst {dst}: cannot write into {folder} (permission denied)"
    return None


def check_shard_destination(dst: Path, overwrite: bool) -> str | None:
    """Why the shard folder `dst` cannot be written (one line), or None."""
    if dst.exists() and not dst.is_dir():
        return f"dst {dst}: is a file; --format wds writes a folder of shards"
    if dst.exists() and not overwrite:
        return f"dst {dst}: already exists; pass --overwrite to replace it"
    if dst.exists() and not (dst / INDEX).is_file():
        return (f"dst {dst}: exists and was not written by loaders.prepare (no {INDEX} in it); --overwrite "
                "replaces only shard folders it wrote: choose another dst or move it away")
    return _place_problem(dst)


def replace_shards(index: ImageIndex, dst: Path, shard_size: int) -> None:
    """The shards of `index` in `dst`, written beside it and swapped in whole (an old `dst` stays
    until the new one is complete)."""
    staged = dst.parent / f".{dst.name}.{os.getpid()}.new"
    shutil.rmtree(staged, ignore_errors=True)
    try:
        write_shards(index.files, index.labels, index.classes, staged, shard_size)
        replace_folder(staged, dst)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """argparse's one-line error (exit 2) for a flag outside its domain, before anything is read."""
    if args.format == "beton" and not args.dst.endswith(".beton"):
        parser.error(f"dst {args.dst!r}: expected a file name ending in .beton")
    for flag, value in (("--shard-size", args.shard_size), ("--workers", args.workers),
                        ("--max-resolution", args.max_resolution)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")


def main(argv: list[str] | None = None) -> int:
    load_plugins(argv, "python -m loaders.prepare")
    parser = ArgumentParser(prog="python -m loaders.prepare", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plugin_flag(parser)
    parser.add_argument("src", help="ImageFolder root (root/<class>/<image>), an archive of one, a dataset name, "
                        "or WebDataset shards (a folder of .tar files, or brace notation)")
    parser.add_argument("dst", help="output .beton file (--format beton) or shard folder (--format wds)")
    parser.add_argument("--format", choices=["beton", "wds"], default="beton",
                        help="an FFCV .beton, or WebDataset shards (dst/shard-NNNNNN.tar + dst/index.json)")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard (--format wds)")
    parser.add_argument("--max-resolution", type=int, default=None,
                        help="downscale so the longer side is at most N pixels")
    parser.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                        help="unreadable files: stop with an error naming them (raise) or leave them out (skip)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes that encode images for the .beton (default: min(4, cores))")
    parser.add_argument("--overwrite", action="store_true", help="replace dst if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    _check_flags(parser, args)
    check = check_destination if args.format == "beton" else check_shard_destination
    problem = check(Path(args.dst), args.overwrite)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        shards = shard_list(args.src)
        index = scan_image_folder(as_folder(shards) if shards else resolve_source(args.src), on_error=args.on_error)
    except (DatasetError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for f, reason in index.skipped:
        print(f"skipped {f}: {reason}", file=sys.stderr)
    try:
        with exclusive(args.dst):  # two prepares into one dst take turns: the .beton and its .json stay a pair
            if args.format == "wds":
                replace_shards(index, Path(args.dst), args.shard_size)
            else:
                write_beton(index, args.dst, args.max_resolution, args.workers, progress=not args.no_progress)
    except OSError as err:  # the disk filled up, the folder went away...
        print(f"error: dst {args.dst}: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(index)} images in {len(index.classes)} classes to {args.dst}"
          + (f" ({len(index.skipped)} unreadable files skipped)" if index.skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
