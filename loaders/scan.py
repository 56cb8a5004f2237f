"""The one ImageFolder scan every backend shares: which images, which labels.

`root/<class>/<image>`: class names sorted -> indices 0..C-1 (torchvision's ImageFolder rule),
files sorted within each class. Each file is opened and fully decoded once (in a thread pool:
Pillow releases the GIL while decoding), so broken files are found here, before any backend
runs: `on_error="raise"` names them in one error, `"skip"` leaves them out and lists them.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
ON_ERROR = ("raise", "skip")


class DatasetError(ValueError):
    """A dataset that cannot be loaded as asked; the message names the path and the expectation."""


@dataclass
class ImageIndex:
    """The scanned dataset: parallel lists of files and labels, plus the class names."""
    root: Path
    files: list[str]
    labels: list[int]
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def __len__(self) -> int:
        return len(self.files)


def _check_image(path: str) -> str | None:
    """None if Pillow can fully decode `path`, else the reason it cannot."""
    from PIL import Image
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as im:
            im.load()
        return None
    except Exception as err:  # Pillow raises many types for broken files; report them all
        return f"{type(err).__name__}: {err}"


def scan_image_folder(root: str | os.PathLike, on_error: str = "raise", validate: bool = True,
                      workers: int | None = None) -> ImageIndex:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such directory (expected an ImageFolder root/<class>/<image>)")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (expected an ImageFolder root/<class>/<image>)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: no class subfolders (expected an ImageFolder root/<class>/<image>)")
    files, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(str(f))
                labels.append(label)
    if not files:
        raise DatasetError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in its "
                           f"{len(classes)} class folders")
    skipped: list[tuple[str, str]] = []
    if validate:
        with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
            reasons = list(pool.map(_check_image, files, chunksize=64))
        broken = [(f, r) for f, r in zip(files, reasons) if r is not None]
        if broken and on_error == "raise":
            listed = "; ".join(f"{f} ({r})" for f, r in broken[:5])
            more = f" and {len(broken) - 5} more" if len(broken) > 5 else ""
            raise DatasetError(f"{root}: {len(broken)} unreadable image file(s): {listed}{more} "
                               "(pass on_error='skip' to leave them out)")
        if broken:
            keep = [r is None for r in reasons]
            files = [f for f, k in zip(files, keep) if k]
            labels = [lab for lab, k in zip(labels, keep) if k]
            skipped = broken
            if not files:
                raise DatasetError(f"{root}: every image file is unreadable ({len(broken)} files)")
    return ImageIndex(root, files, labels, classes, skipped)
