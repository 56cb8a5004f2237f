"""`build_loader`: one interface over every registered backend (`loaders.backends.base.BACKENDS`)."""
from __future__ import annotations

import itertools
import os
import warnings
from pathlib import Path

import torch

from loaders.backends.base import BACKENDS, SHARD_READERS, LoaderConfig
from loaders.backends.order import num_batches
from loaders.sources.datasets import resolve_source
from loaders.sources.shards import as_folder, shard_list

DEFAULT_RANDOM_CROP = ((0.08, 1.0), (3 / 4, 4 / 3))  # random_crop=True: torchvision's (scale, ratio)


class Loader:
    """Iterable of `(images, labels)`; each pass is the next epoch (or the one `set_epoch` chose)."""

    def __init__(self, backend, config: LoaderConfig, size: int, classes: list[str] | None):
        self._backend = backend
        self.config = config
        self.dataset_size = size
        self.classes = classes
        self.epoch = 0
        self._start = 0

    def skip(self, batches: int) -> None:
        """The next pass starts at batch `batches` of its epoch (a run resumed mid-epoch): the
        same batches as the rest of an uninterrupted pass. A backend that can start there says so
        (`starts_mid_epoch`: the torch backend); others load the skipped batches and drop them."""
        if not isinstance(batches, int) or batches < 0:
            raise ValueError(f"skip: expected a number of batches >= 0, got {batches!r}")
        self._start = batches

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return getattr(self._backend, "skipped", [])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """The batches this rank gets in the next epoch (a backend whose count varies by epoch,
        WebDataset shards of unequal sizes, says so itself: `num_batches(epoch)`)."""
        if hasattr(self._backend, "num_batches"):
            return self._backend.num_batches(self.epoch)
        c = self.config
        return num_batches(self.dataset_size, c.batch_size, c.rank, c.world_size, c.drop_last)

    def __iter__(self):
        epoch, start = self.epoch, self._start
        self.epoch, self._start = epoch + 1, 0
        if not start:
            epoch_batches = self._backend.iter_epoch(epoch)
        elif getattr(self._backend, "starts_mid_epoch", False):
            epoch_batches = self._backend.iter_epoch(epoch, start=start)
        else:
            epoch_batches = itertools.islice(self._backend.iter_epoch(epoch), start, None)
        for images, labels in epoch_batches:
            if self.config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            # labels are always [B] (FFCV's Squeeze makes a batch of one 0-d)
            yield images, labels.reshape(images.shape[0])


def _check_source(source) -> None:
    if isinstance(source, (list, tuple)):
        if not source or not all(isinstance(s, (str, os.PathLike)) for s in source):
            raise ValueError(f"source: a list must hold the paths of WebDataset shards (.tar), got {source!r}")
    elif not isinstance(source, (str, os.PathLike)) or not str(source):
        raise ValueError(f"source must be a folder, an archive, a dataset name or WebDataset shards, got {source!r}")


def _open(kind: str, source, config: LoaderConfig, options: dict):
    """(the source's folder, the backend reading it): WebDataset shards streamed by the backends
    that read them (`SHARD_READERS`: torch, DALI, each saying which shards it `reads`) and
    unpacked once into the cache for the others; anything else resolved to a folder (or `.beton`)
    for the backend `kind`."""
    shards = shard_list(source)
    if shards is not None and kind in SHARD_READERS and SHARD_READERS[kind].reads(shards):
        return Path(shards[0]).parent, _construct(SHARD_READERS[kind], kind, shards, config, options)
    path = as_folder(shards) if shards is not None else resolve_source(source)
    return path, _construct(BACKENDS[kind], kind, path, config, options)


def _renamed_option(options: dict, ffcv_order: str | None) -> None:
    if ffcv_order is not None:
        warnings.warn("build_loader(ffcv_order=...) is now the FFCV backend's own option: order=...",
                      DeprecationWarning, stacklevel=3)
        options.setdefault("order", ffcv_order)


def _construct(cls, kind: str, where, config: LoaderConfig, options: dict):
    """`cls(where, config, **options)`; an option the backend does not take is one line naming it."""
    if options:
        import inspect
        params = inspect.signature(cls.__init__).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        unknown = [k for k in options if k not in params and not takes_any]
        if unknown:
            raise ValueError(f"the {kind} loader takes no option {', '.join(map(repr, unknown))}")
    return cls(where, config, **options)


def build_loader(kind: str, source: str | os.PathLike, *, batch_size: int, image_size: int,
                 device: str | torch.device = "cpu", shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, num_workers: int | None = None, rank: int = 0,
                 world_size: int = 1, on_error: str = "raise",
                 random_crop: tuple[tuple[float, float], tuple[float, float]] | bool | None = None,
                 channels_last: bool = False, subset: int | None = None, progress: bool = True,
                 ffcv_order: str | None = None, **options) -> Loader:
    """A loader of uint8 `[N,3,image_size,image_size]` images and int64 labels on `device`.

    Args:
        kind: `"torch"`, `"dali"`, `"ffcv"`, or a backend registered with `register_backend`.
        source: An ImageFolder root, an archive of one, a dataset name (`digits`,
            `cifar10:test`...: `loaders.sources.datasets`), WebDataset shards
            (`train-{000000..000127}.tar`, a folder of `.tar` files, or a list:
            `loaders.sources.shards`; streamed by `torch` and `dali`, unpacked once into the cache
            for `ffcv`), or for `ffcv` also a `.beton` file (any other source is converted once
            into the cache).
        batch_size: Images per batch (per process under DDP).
        image_size: The side of every image.
        device: Where the batches are delivered.
        shuffle: A new seeded order every epoch.
        seed: The seed of the order, the subset and the random crops.
        drop_last: Leave out the last, smaller batch.
        num_workers: Decoding workers (None: up to 4).
        rank: This process's rank: each takes its own part of the data.
        world_size: The number of processes.
        on_error: `"raise"` on an unreadable image, or `"skip"` it (counted in `skipped`).
        random_crop: None or False for the centre square resized to `image_size`; True or
            `(scale, ratio)` for a random resized crop at decode time (DALI
            `image_random_crop`, FFCV `RandomResizedCropRGBImageDecoder`, torchvision's
            RandomResizedCrop parameters on the torch backend).
        channels_last: Batches in channels_last memory format.
        subset: Load only a seeded random subset of this many images (the same on every backend).
        progress: Show progress bars of one-time work (writing the `.beton` of a folder for `ffcv`).
        ffcv_order: The former name of FFCV's `order` option.
        **options: What one backend alone takes: for `ffcv`, `order="random"` or
            `"quasi_random"` (FFCV's memory-friendly order); any other is refused in one line.

    Returns:
        A `Loader`: iterate it for `(images, labels)`; `set_epoch(epoch)` before each pass.

    Raises:
        ValueError: An unknown kind, a missing source, or a bad value, named in one line.
    """
    if kind not in BACKENDS:
        raise ValueError(f"unknown loader kind {kind!r}; valid: {', '.join(BACKENDS)} (or --plugin a module that "
                         "registers one)")
    _check_source(source)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r}: not a torch device ({' '.join(str(err).split())})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but CUDA is not available on this machine")
    config = LoaderConfig(batch_size=batch_size, image_size=image_size, device=device, shuffle=shuffle, seed=seed,
                          drop_last=drop_last, rank=rank, world_size=world_size, on_error=on_error,
                          num_workers=min(4, os.cpu_count() or 1) if num_workers is None else num_workers,
                          random_crop=DEFAULT_RANDOM_CROP if random_crop is True else random_crop or None,
                          channels_last=channels_last, subset=subset, progress=progress)
    _renamed_option(options, ffcv_order)
    path, backend = _open(kind, source, config, options)
    size = backend.size
    per_rank = size // world_size if drop_last else -(-size // world_size)
    if drop_last and per_rank < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the {per_rank} images per rank of "
                         f"{Path(path)} with drop_last=True: every batch would be dropped")
    return Loader(backend, config, size, backend.classes)
