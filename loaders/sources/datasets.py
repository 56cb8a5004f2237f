"""Where images come from: embedded datasets, archives and folders, resolved to an ImageFolder.

Sources (`resolve_source`, used by `build_loader`, `loaders.prepare`, `ssl_train --data` through
`splits`, and the experiments): an ImageFolder path; an archive of one (`.tar`, `.tar.gz`,
`.tgz`, `.zip`), unpacked once into the cache under a key of its content, atomically, optionally
with a split (`data.tar.gz:test`); an embedded dataset name; a dataset torchvision downloads
(`cifar10`, `cifar100`, `stl10`, with `:test` or STL-10's `:unlabeled`: `loaders.sources.downloads`).

`digits`: scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, 10 classes), upsampled
to 32x32 RGB PNGs. Every 5th image of each class goes to `test/`, the rest to `train/`.
Names: `digits` (= `digits:train`) and `digits:test`. Files are written to a temporary folder and
renamed into the cache (`$AUGPIPE_CACHE`, default `~/.cache/augpipe`), so a crash never leaves a
half-written dataset and concurrent first uses (DDP ranks) are safe.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
import zlib
from pathlib import Path

from loaders.sources.cache import cache_dir, written_once
from loaders.sources.downloads import DOWNLOADS, materialize_download
from loaders.sources.scan import DatasetError, failure_reason

EMBEDDED = ("digits",)
DIGITS_SIZE = 32


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
    """The folder of an embedded dataset, with `train/` and `test/`, written on first use.

    Args:
        name: The embedded dataset (`digits`).

    Returns:
        Its folder in the cache.

    Raises:
        DatasetError: An unknown name.
    """
    if name not in EMBEDDED:
        raise DatasetError(f"unknown embedded dataset {name!r}; valid: {', '.join(EMBEDDED)}")
    return written_once(cache_dir() / f"{name}-v1", _write_digits)


ARCHIVES = (".tar", ".tar.gz", ".tgz", ".zip")
SPLITS = ("train", "test")


def _extract(archive: Path, folder: Path) -> None:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():  # zipfile drops absolute paths and `..`; refuse them outright
                if member.startswith("/") or ".." in Path(member).parts:
                    raise DatasetError(f"{archive}: member {member!r} would land outside the folder")
            z.extractall(folder)
        return
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")  # members that would land outside the folder are refused


def _unpack(archive: Path, folder: Path) -> None:
    """`_extract`, with a damaged archive named in one line."""
    try:
        _extract(archive, folder)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        # tarfile's ReadError lists every compression it tried: one line says the same
        reason = "ReadError: not a tar stream, plain or compressed" if isinstance(err, tarfile.ReadError) \
            else failure_reason(err)
        raise DatasetError(f"{archive}: cannot unpack it ({reason}); expected a readable "
                           f"{', '.join(ARCHIVES)} archive") from None


def _archive_key(archive: Path) -> str:
    """The archive's name, size, mtime and first and last 64 KiB: a replaced archive is unpacked again."""
    st = archive.stat()
    h = hashlib.sha256(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    with open(archive, "rb") as f:
        h.update(f.read(1 << 16))
        f.seek(max(0, st.st_size - (1 << 16)))
        h.update(f.read(1 << 16))
    return h.hexdigest()[:12]


def unpacked(archive: Path, cache: Path | None = None) -> Path:
    """The folder an archive (`ARCHIVES`) unpacks to, under `cache` (default `$AUGPIPE_CACHE/archives`),
    named after the archive and its content, unpacked once (`written_once`)."""
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such archive")
    if not archive.name.endswith(ARCHIVES):
        raise DatasetError(f"{archive}: not an archive ({', '.join(ARCHIVES)})")
    cache = Path(cache) if cache is not None else cache_dir() / "archives"
    name = f"{archive.name.split('.')[0]}-{_archive_key(archive)}"
    return written_once(cache / name, lambda folder: _unpack(archive, folder))


def dataset_root(folder: Path) -> Path:
    """The dataset inside an unpacked archive: down through folders that only wrap one folder
    (`cifar10/` around `train/` and `test/`), hidden entries (`__MACOSX`, `.DS_Store`) aside."""
    while True:
        entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if len(entries) != 1 or not entries[0].is_dir() or entries[0].name in SPLITS:
            return folder
        folder = entries[0]


def _split_source(text: str) -> tuple[str, str | None]:
    """`NAME:SPLIT` -> (NAME, SPLIT) when SPLIT is a split; anything else -> (text, None)."""
    head, sep, split = text.rpartition(":")
    return (head, split) if sep and split in SPLITS + ("unlabeled",) and head else (text, None)


def resolve_source(source: str | os.PathLike) -> Path:
    """The folder a source names.

    Args:
        source: `digits` or `digits:test` (an embedded split), `DATA.tar.gz[:SPLIT]` (an
            archive, unpacked once into the cache; its `train/` by default when it has
            `train/` and `test/`), or any other path.

    Returns:
        The split's folder, or the path as given.
    """
    text = str(source)
    if Path(text).exists() and not text.endswith(ARCHIVES):
        return Path(text)
    name, split = _split_source(text)
    if text.partition(":")[0] in EMBEDDED:
        if name not in EMBEDDED:
            raise DatasetError(f"{text!r}: split must be train or test")
        return materialize(name) / (split or "train")
    if text.partition(":")[0] in DOWNLOADS:
        download = DOWNLOADS[text.partition(":")[0]]
        if name not in DOWNLOADS or (split or "train") not in download.splits:
            raise DatasetError(f"{text!r}: split must be one of {', '.join(download.splits)}")
        return materialize_download(name, cache_dir()) / (split or "train")
    if name.endswith(ARCHIVES):
        root = dataset_root(unpacked(Path(name)))
        if (root / "train").is_dir() and (root / "test").is_dir():
            return root / (split or "train")
        if split:
            raise DatasetError(f"{text}: the archive holds no {split}/ folder (it holds {root.name}/ as one dataset)")
        return root
    return Path(source)


def splits(source: str) -> tuple[str, str]:
    """(train, test) sources of a dataset with both: an embedded name, an archive, or a folder
    holding train/ and test/ ImageFolders; ValueError naming the source otherwise."""
    if source in EMBEDDED or source in DOWNLOADS or source.endswith(ARCHIVES):
        return f"{source}:train", f"{source}:test"
    root = Path(source)
    if not root.exists() and ("/" in source or os.sep in source):  # a path, not a name: say so, not what names exist
        raise DatasetError(f"--data {source}: does not exist")
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DatasetError(f"--data {source}: expected an embedded name ({', '.join(EMBEDDED)}), a dataset name "
                         f"({', '.join(DOWNLOADS)}), an archive "
                         f"({', '.join(ARCHIVES)}) of a dataset, or a folder with train/ and test/ ImageFolders")
    return str(root / "train"), str(root / "test")
