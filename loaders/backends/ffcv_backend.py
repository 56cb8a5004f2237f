"""`ffcv` backend: an FFCV `.beton` file read by `ffcv.loader.Loader`.

An ImageFolder source (or `digits`) is written once into a `.beton` in the cache, keyed by the
folder's content (every file's path, size, mtime, first and last 4 KiB, the labels, the
resolution, the format version: an edited folder means a new file, and the old one is removed) with `loaders.prepare`, which decodes every
image with the reference Pillow decoding, stored raw when small. Sample i of the file is image i of
the shared scan, so indices mean the same thing on every backend.

Order: `shuffle=False` reads this rank's indices in order (`loaders.backends.order`); with shuffling FFCV
permutes this rank's shard per epoch with its own RANDOM (or QUASI_RANDOM) order seeded from
`seed + epoch` (FFCV's rule). The shard itself is this rank's share of a fixed `(seed, 0)`
permutation: disjoint across ranks, covering the dataset, fixed for the run.

The first use in a process compiles FFCV's pipeline with numba (several seconds): logged, not
silent. FFCV also sets torch's intra-op thread count to its worker count (to 1 on import), for
the whole process; the backend puts the caller's count back, or CPU training would silently run
on one core.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from _augpipe_shared.atomicio import exclusive
from loaders.backends.base import Selection, register_backend
from loaders.sources.cache import cache_dir

log = logging.getLogger("loaders.ffcv")


FORMAT_VERSION = 2  # of the cached .beton files: bump when prepare writes them differently


SAMPLED_BYTES = 4096  # of each file's head and tail in the content key


def content_key(index, max_resolution: int | None, square: int | None = None) -> str:
    """What the cached file depends on: every file's path, size, mtime, first and last 4 KiB, the
    labels, the resolution and the format version (a replaced image, same name, same count: a
    new key, even at the same size with its old mtime restored).

    It trusts that an edit which keeps a file's size, mtime, head and tail (a change only in
    the middle of a file larger than 8 KiB, with its mtime put back) does not happen: reading
    two blocks per file keeps the key cheap (ImageNet's 1.28M files: two small reads each)."""
    h = hashlib.sha256(f"v{FORMAT_VERSION}|{max_resolution}|{square}|{index.classes}".encode())
    for f, label in zip(index.files, index.labels):
        st = os.stat(f)
        h.update(os.fsencode(f) + f"|{st.st_size}|{st.st_mtime_ns}|{label}\n".encode())  # any file name
        with open(f, "rb") as file:
            h.update(file.read(SAMPLED_BYTES))
            if st.st_size > SAMPLED_BYTES:
                file.seek(max(SAMPLED_BYTES, st.st_size - SAMPLED_BYTES))
                h.update(file.read(SAMPLED_BYTES))
    return h.hexdigest()[:16]


def beton_for_folder(path: Path, on_error: str, max_resolution: int | None = None, progress: bool = True,
                     square: int | None = None, members: Callable[[int], np.ndarray] | None = None
                     ) -> tuple[Path, list, np.ndarray | None]:
    """The cached `.beton` of an ImageFolder (written when the folder's content is new), the
    skipped files (its classes are in the file's description: `open_beton`), and which images of
    the scan it holds (None: all). A changed folder writes a new file; the old one is removed.
    `square`: store each image as the torch backend's centre square of that side (the loader's
    size, without random crops), so both backends give the same pixels for any image mode.
    `members(n)`: the (sorted) images of a scan of n to convert, e.g. a loader's `subset`: only
    those are decoded and written (a file per subset)."""
    from loaders.sources.beton import sidecar_path, write_beton
    from loaders.sources.scan import scan_image_folder

    index = scan_image_folder(path, on_error=on_error)
    kept = members(len(index)) if members is not None else None
    if kept is not None and len(kept) < len(index):
        index = dataclasses.replace(index, files=[index.files[i] for i in kept], labels=[index.labels[i] for i in kept],
                                    modes=[index.modes[i] for i in kept] if index.modes else [])
    else:
        kept = None
    folder_key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    cache = cache_dir() / "beton"
    part = f"-n{len(kept)}-{hashlib.sha1(kept.tobytes()).hexdigest()[:8]}" if kept is not None else ""
    variant = f"{path.name}-{folder_key}-s{square or 0}{part}"  # one cached file per folder, stored size, subset
    target = cache / f"{variant}-{content_key(index, max_resolution, square)}.beton"
    with exclusive(target):  # processes building this cache take turns: the second one reuses it
        if not target.exists() or not sidecar_path(target).exists():
            log.warning("ffcv: writing %s from %s (%d images, once per content)", target, path, len(index))
            write_beton(index, target, max_resolution=max_resolution, progress=progress, square=square)
            for old in cache.glob(f"{variant}-*.beton*"):
                if old.name not in (target.name, sidecar_path(target).name):
                    old.unlink(missing_ok=True)
    return target, index.skipped, kept


def open_beton(path: Path) -> tuple[int, list[str] | None]:
    """Check a `.beton` before FFCV reads it: (number of samples, class names or None).

    With its `NAME.beton.json` (written by `loaders.prepare`): the size and SHA-256 must match, so
    truncation, swapped files and flipped bytes anywhere are one error naming the file. Without
    one (a `.beton` from elsewhere): FFCV's header and allocation table must parse and fit the
    file; flipped bytes inside the stored pixels cannot be detected then.
    """
    from loaders.sources.beton import beton_samples, file_digest, sidecar_path
    from loaders.sources.scan import DatasetError
    meta_path = sidecar_path(path)
    size = path.stat().st_size
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            expected_bytes, expected_sha = int(meta["bytes"]), str(meta["sha256"])
        except (ValueError, KeyError, TypeError) as err:
            raise DatasetError(f"{meta_path}: unreadable description of {path.name} ({type(err).__name__}); "
                               "rewrite the .beton with loaders.prepare") from None
        if size != expected_bytes:
            raise DatasetError(f"{path}: damaged .beton ({size} bytes, {expected_bytes} written); rewrite it "
                               "with python -m loaders.prepare")
        if file_digest(path) != expected_sha:
            raise DatasetError(f"{path}: damaged .beton (SHA-256 differs from the one written); rewrite it "
                               "with python -m loaders.prepare")
        return int(meta["num_samples"]), list(meta["classes"])  # [] for an unlabeled folder
    return beton_samples(path), None


@register_backend
class Backend:
    name = "ffcv"

    ORDERS = ("random", "quasi_random")

    def __init__(self, path, config, order: str = "random"):
        """`order`: `random`, or `quasi_random` (FFCV's memory-friendly order for data larger than RAM)."""
        if order not in self.ORDERS:
            raise ValueError(f"ffcv: order must be 'random' or 'quasi_random', got {order!r}")
        self.order = order
        self._threads = torch.get_num_threads()
        import ffcv  # noqa: F401  (fail here, with the import error)
        torch.set_num_threads(self._threads)

        path = Path(path)
        self.config = config
        self.skipped, self._held, chosen = [], None, []
        if path.suffix == ".beton":
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such .beton file")
            self.beton = path
        else:
            square = config.image_size if config.random_crop is None else None
            def members(n):  # a subset: convert only its images (the shared Selection of the scan)
                chosen.append(Selection(n, config))
                return chosen[0].members
            self.beton, self.skipped, self._held = beton_for_folder(path, config.on_error, progress=config.progress,
                                                                    square=square,
                                                                    members=members if config.subset else None)
        num_samples, classes = open_beton(self.beton)
        self._samples = num_samples
        self.classes = classes  # None: a bare .beton has labels but no class names
        # sample i of the file is image i of the scan, or, in a subset's file, image `_held[i]`
        self.selection = Selection(num_samples, config) if self._held is None else chosen[0]
        self.size = self.selection.size
        self._ffcv = None
        self._compiled = False  # numba compiles FFCV's pipeline on the first batch

    def _loader(self, indices, ordered: bool):
        from ffcv.fields.basics import IntDecoder
        from ffcv.fields.rgb_image import CenterCropRGBImageDecoder, RandomResizedCropRGBImageDecoder
        from ffcv.loader import Loader, OrderOption
        from ffcv.transforms import ToDevice, ToTensor, ToTorchImage

        c = self.config
        size = (c.image_size, c.image_size)
        if c.random_crop is None:
            decoder = CenterCropRGBImageDecoder(size, ratio=1.0)
        else:
            decoder = RandomResizedCropRGBImageDecoder(size, scale=c.random_crop[0], ratio=c.random_crop[1])
        on_cuda = c.device.type == "cuda"
        image_ops = [decoder, ToTensor()]
        label_ops = [IntDecoder(), ToTensor()]  # [B, 1]: the Loader reshapes labels to [B] for every backend
        if on_cuda:
            image_ops.append(ToDevice(c.device, non_blocking=True))
            label_ops.append(ToDevice(c.device, non_blocking=True))
        image_ops.append(ToTorchImage(channels_last=True))
        if ordered:
            order = OrderOption.SEQUENTIAL
        else:
            order = OrderOption.QUASI_RANDOM if self.order == "quasi_random" else OrderOption.RANDOM
        return Loader(str(self.beton), batch_size=c.batch_size, num_workers=max(1, c.num_workers),
                      order=order, seed=c.seed, indices=indices, drop_last=c.drop_last,
                      pipelines={"image": image_ops, "label": label_ops}, os_cache=True)

    def iter_epoch(self, epoch: int):
        c = self.config
        if self._ffcv is None:
            # One FFCV Loader for the run: its indices do not depend on the epoch (in order, or
            # this rank's shard of the shared epoch-0 order, which FFCV permutes per epoch: the one
            # place the order is FFCV's own, since its Loader takes a fixed index list), and each
            # new Loader would regenerate and recompile its pipeline (about a second).
            indices = self.selection.epoch_order(0)
            if self._held is not None:  # scan indices -> positions in the subset's file
                indices = np.searchsorted(self._held, indices)
            if len(indices) and int(indices.max()) >= self._samples:  # FFCV would hang on it, not fail
                raise RuntimeError(f"{self.beton}: sample {int(indices.max())} asked of a file of {self._samples}")
            if len(indices) == 0:
                return
            self._ffcv = self._loader(indices, ordered=not c.shuffle)
            torch.set_num_threads(self._threads)
        loader = self._ffcv
        loader.next_epoch = epoch
        start = time.perf_counter()
        if not self._compiled:
            log.warning("ffcv: first batch compiles the pipeline with numba (several seconds, once per process)")
        iterator = iter(loader)
        torch.set_num_threads(self._threads)
        try:
            for step, (images, labels) in enumerate(iterator):
                if step == 0:  # FFCV's thread has set the count again when it started
                    torch.set_num_threads(self._threads)
                if not self._compiled:
                    self._compiled = True
                    log.warning("ffcv: pipeline compiled in %.1f s", time.perf_counter() - start)
                # FFCV hands out views of its ring of prefetch buffers, which its thread refills:
                # a batch kept past the next step would change under the caller. Copy it out.
                yield images.clone(memory_format=torch.channels_last), labels.to(torch.int64, copy=True)
        finally:
            _stop(iterator)


def _stop(iterator, timeout_s: float = 10.0) -> None:
    """Stop FFCV's prefetch thread when an epoch is left early (break, exception).

    `EpochIterator.close()` only sets a flag; a thread blocked on its full output queue never sees
    it and aborts the interpreter at exit. Drain the queue until the thread has ended.
    """
    import queue

    iterator.close()
    deadline = time.monotonic() + timeout_s
    while iterator.is_alive() and time.monotonic() < deadline:
        try:
            iterator.output_queue.get_nowait()
        except queue.Empty:
            pass
        iterator.join(timeout=0.01)
