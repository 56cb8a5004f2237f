"""The `Backend` contract, its configuration, and what the ImageFolder-reading backends share.

A backend turns a source into batches; everything else (which images, which labels, which order)
is decided once, here and in `scan` / `order`, so every backend loads the same samples:

    class MyBackend:                       # registered with @register_backend, name = "mine"
        name = "mine"
        def __init__(self, path: Path, config: LoaderConfig, **own): ...  # sets size, classes, skipped
        def iter_epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]: ...
            # uint8 [B, 3, S, S] images and int64 labels (shape [B] or [B, 1]) on config.device

`size` is the number of samples this loader draws from (after `subset`), `classes` the class
names (`[]` unlabeled), `skipped` the (file, reason) pairs left out. What every backend reads is
in `LoaderConfig`; what one backend alone takes (FFCV's `order`) is a keyword argument of its
own, passed through `build_loader(..., **options)`. A backend that can begin an
epoch at batch k without loading the batches before it sets `starts_mid_epoch = True` and takes
`iter_epoch(epoch, start=k)` (a run resumed mid-epoch); for others `Loader.skip` drops them. `Selection` gives the seeded
subset and each epoch's order and shard (`loaders.backends.order`); `ScannedBackend` adds the shared scan.
See docs/ARCHITECTURE.md ("loaders: the Backend contract").
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator, Protocol

import numpy as np
import torch

from _augpipe_shared.registry import Registry
from loaders.backends.order import epoch_indices, subset_members
from loaders.sources.scan import scan_image_folder


@dataclass(frozen=True, kw_only=True)
class LoaderConfig:
    batch_size: int
    image_size: int
    device: torch.device
    shuffle: bool = True
    seed: int = 0
    drop_last: bool = False
    num_workers: int = 2
    rank: int = 0
    world_size: int = 1
    on_error: str = "raise"
    random_crop: tuple[tuple[float, float], tuple[float, float]] | None = None  # (scale, ratio)
    channels_last: bool = False
    subset: int | None = None
    progress: bool = True  # progress bars of one-time work (FFCV's .beton writer)

    def __post_init__(self) -> None:
        """Every field checked where it enters: one line naming it and what it allows."""
        for name, low in (("batch_size", 1), ("image_size", 1), ("seed", 0), ("world_size", 1), ("num_workers", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.rank, int) or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be an integer in [0, world_size={self.world_size}), got {self.rank!r}")
        if self.subset is not None and (not isinstance(self.subset, int) or self.subset < 1):
            raise ValueError(f"subset must be None (all) or an integer >= 1, got {self.subset!r}")
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")
        if self.random_crop is not None and not _valid_crop(self.random_crop):
            raise ValueError(f"random_crop must be True or ((scale_lo, scale_hi), (ratio_lo, ratio_hi)) with "
                             f"0 < scale_lo <= scale_hi <= 1 and 0 < ratio_lo <= ratio_hi, got {self.random_crop!r}")


def _valid_crop(crop) -> bool:
    """`(scale, ratio)`: two ordered pairs of finite numbers, 0 < scale <= 1, 0 < ratio."""
    try:
        (s_lo, s_hi), (r_lo, r_hi) = crop
        return all(math.isfinite(v) for v in (s_lo, s_hi, r_lo, r_hi)) and 0 < s_lo <= s_hi <= 1 and 0 < r_lo <= r_hi
    except (TypeError, ValueError):
        return False


class Backend(Protocol):
    name: ClassVar[str]
    size: int
    classes: list[str]
    skipped: list[tuple[str, str]]

    def __init__(self, path: Path, config: LoaderConfig) -> None: ...

    def iter_epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def _contract_errors(cls) -> list[str]:
    if not isinstance(cls, type):
        return ["it must be a class"]
    errors = []
    if not isinstance(getattr(cls, "name", None), str) or not re.fullmatch(r"[A-Za-z_][\w-]*", cls.name):
        errors.append(f"its class attribute `name` must be a word like 'my_backend', got {getattr(cls, 'name', None)!r}")
    if not callable(getattr(cls, "iter_epoch", None)):
        errors.append("it must define iter_epoch(self, epoch)")
    return errors


BACKENDS: Registry[type[Backend]] = Registry("loader backend", "register_backend", _contract_errors)
for _name in ("torch", "dali", "ffcv"):  # built-ins, imported on first use (DALI and FFCV are heavy)
    BACKENDS.register(_name, f"loaders.backends.{_name}_backend:Backend")


# Backends that stream WebDataset shards themselves (constructed with the shard list, not a folder);
# any other backend reads shards unpacked once into the cache (`loaders.sources.shards.as_folder`).
SHARD_READERS: Registry[type] = Registry("shard reader", "SHARD_READERS.register")
SHARD_READERS.register("torch", "loaders.backends.torch_shards:ShardBackend")
SHARD_READERS.register("dali", "loaders.backends.dali_shards:DaliShardBackend")

register_backend = BACKENDS.class_decorator(
    """Register a loader backend: `@register_backend` above a class meeting the `Backend`
    contract; its `name` becomes a valid `build_loader` kind and `--loader`.""")


class Selection:
    """Which dataset indices a loader draws from (all, or the seeded `subset`) and, per epoch,
    which of them this rank loads in which order (`loaders.backends.order`): the same on every backend."""

    def __init__(self, num_samples: int, config: LoaderConfig):
        self.config = config
        self.members = subset_members(num_samples, config.subset, config.seed)

    @property
    def size(self) -> int:
        return len(self.members)

    def epoch_order(self, epoch: int) -> np.ndarray:
        c = self.config
        order = epoch_indices(self.size, epoch=epoch, seed=c.seed, shuffle=c.shuffle, rank=c.rank,
                              world_size=c.world_size, drop_last=c.drop_last)
        return self.members[order]


class ScannedBackend:
    """Scans the folder once (the shared scan) and answers, per epoch, which dataset indices
    this rank loads in which order (the shared `Selection`)."""

    def __init__(self, path, config: LoaderConfig):
        index = scan_image_folder(path, on_error=config.on_error)
        self.config, self.index = config, index
        self.selection = Selection(len(index), config)
        self.size, self.classes, self.skipped = self.selection.size, index.classes, list(index.skipped)

    def epoch_order(self, epoch: int) -> np.ndarray:
        return self.selection.epoch_order(epoch)
