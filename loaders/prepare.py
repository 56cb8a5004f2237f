"""`python -m loaders.prepare SRC DST.beton`: write an FFCV file from an ImageFolder, atomically.
(`python -m loaders.prepare SRC DST --format wds --shard-size N`: WebDataset shards instead, the
images' own bytes with a `.cls` label, `DST/index.json` holding the classes and the shard sizes;
the folder is written beside DST and renamed into place, and replaced whole: `loaders.sources.shards`.)

Every image is decoded with the reference Pillow decoding (`loaders.sources.decode`: any mode to RGB),
optionally downscaled so its longer side is at most `--max-resolution`, and stored raw (exact
pixels) when its side is at most 64 px, else as JPEG (quality 95). The file is written under a
temporary name next to DST and renamed when complete: an interrupted run never leaves a
half-written DST (its temporary is removed by the next write). An existing DST is replaced only
with `--overwrite`. Beside it, `DST.json` records the class names, the source scan, and the file's
size and SHA-256: `build_loader("ffcv", DST)` restores the classes and refuses a damaged file.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from _augpipe_shared.atomicio import exclusive, nearest_existing, replace_folder
from _augpipe_shared.cli import ArgumentParser
from _augpipe_shared.plugins import add_plugin_flag, load_plugins
from loaders.sources.beton import sidecar_path, write_beton
from loaders.sources.datasets import resolve_source
from loaders.sources.scan import DatasetError, ImageIndex, scan_image_folder
from loaders.sources.shards import INDEX, as_folder, shard_list, write_shards


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
