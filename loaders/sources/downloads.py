"""Datasets by name, through torchvision's own downloaders: `cifar10`, `cifar100`, `stl10`.

Each is fetched once by torchvision (into `$AUGPIPE_CACHE/downloads`, its own format, its own
checksums) and written once as an ImageFolder of PNG files (`$AUGPIPE_CACHE/<name>-v1/<split>/
<class>/<i>.png`, through a temporary folder renamed into place: `cache.written_once`), so every
backend reads it as any other folder. Splits: `train` (the default) and `test`; STL-10 also has
`unlabeled` (100,000 images, no class folders: an unlabeled folder). Offline, the error names what
is missing, the URL, and how to pass a local copy instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loaders.sources.cache import written_once


@dataclass(frozen=True)
class Download:
    torchvision_class: str
    splits: tuple[str, ...]

    def load(self, root: Path, split: str):
        """The torchvision dataset of `split` (downloaded into `root` when missing)."""
        import torchvision.datasets as tv
        cls = getattr(tv, self.torchvision_class)
        if self.torchvision_class == "STL10":
            return cls(str(root), split=split, download=True)
        return cls(str(root), train=split == "train", download=True)


DOWNLOADS = {
    "cifar10": Download("CIFAR10", ("train", "test")),
    "cifar100": Download("CIFAR100", ("train", "test")),
    "stl10": Download("STL10", ("train", "test", "unlabeled")),
}


def _images_and_labels(dataset):
    """(uint8 HWC images, labels) of a torchvision CIFAR / STL-10 dataset, without PIL per sample."""
    import numpy as np
    data = np.asarray(dataset.data)
    if data.ndim == 4 and data.shape[1] == 3:  # STL-10 stores CHW
        data = data.transpose(0, 2, 3, 1)
    labels = getattr(dataset, "targets", None)
    if labels is None:
        labels = dataset.labels
    return data, [int(v) for v in labels]


def _write(name: str, download: Download, root: Path, folder: Path) -> None:
    from PIL import Image
    for split in download.splits:
        dataset = download.load(root, split)
        images, labels = _images_and_labels(dataset)
        for i, (image, label) in enumerate(zip(images, labels)):
            target = folder / split / (dataset.classes[label] if label >= 0 else "")
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target / f"{i:06d}.png")


def materialize_download(name: str, cache: Path) -> Path:
    """The ImageFolder of the dataset `name` (a key of `DOWNLOADS`), downloaded and written once."""
    download, root = DOWNLOADS[name], cache / "downloads"
    try:
        return written_once(cache / f"{name}-v1", lambda folder: _write(name, download, root, folder))
    except (OSError, RuntimeError) as err:  # no network (URLError is an OSError), a bad checksum
        import torchvision.datasets as tv
        url = getattr(getattr(tv, download.torchvision_class), "url", "?")
        reason = " ".join(str(err).split())[:200]
        raise OSError(f"{name}: could not get it through torchvision ({reason}); it fetches {url} into "
                      f"{root}: put that file there by hand, or pass a local copy as an ImageFolder or an "
                      f"archive of one instead of the name") from None
