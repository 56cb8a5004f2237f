"""`torch` backend: Pillow decoding in DataLoader workers, pinned memory, non-blocking copies.

The reference backend: its decoding (`loaders.sources.decode`) defines the pixels that the other
backends are tested against.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import nullcontext

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from loaders.backends.base import ScannedBackend, register_backend
from loaders.backends.order import batches
from loaders.sources.decode import center_resized, load_rgb
from loaders.sources.forking import fork_safe
from loaders.sources.scan import failure_reason, unreadable_at_load_time


def _crop_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.default_rng([seed, epoch, index, 0x5EED]).integers(2**62))


class _Files(Dataset):
    """Sample `(index, epoch)` -> (HWC uint8, label), or, for a file that cannot be decoded any
    more (it changed after the scan), `(None, (file, reason))`: the loader skips it or raises
    one error naming the file, by its `on_error`."""

    def __init__(self, files, labels, image_size, random_crop, seed):
        self.files, self.labels = files, labels
        self.image_size, self.random_crop, self.seed = image_size, random_crop, seed

    def __len__(self):
        return len(self.files)

    def __getitem__(self, item):
        index, epoch = item
        try:
            return self._load(index, epoch)
        except Exception as err:  # Pillow raises many types for a file broken after the scan
            # handed back, not raised: an error raised in a worker reaches the caller wrapped in
            # the worker's whole traceback; the main process raises it as one line (iter_epoch)
            return None, (self.files[index], failure_reason(err))

    def _load(self, index, epoch):
        im = load_rgb(self.files[index])
        if self.random_crop is None:
            arr = center_resized(im, self.image_size)
        else:
            from torchvision.transforms import RandomResizedCrop
            from torchvision.transforms.functional import resized_crop
            scale, ratio = self.random_crop
            # torchvision's own RRC parameters, from a per-(seed, epoch, index) RNG: reproducible
            # whatever the worker count, and the caller's global RNG is left alone.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_crop_seed(self.seed, epoch, index))
                top, left, h, w = RandomResizedCrop.get_params(im, list(scale), list(ratio))
            arr = np.asarray(resized_crop(im, top, left, h, w, [self.image_size] * 2), dtype=np.uint8)
        return arr, self.labels[index]


def _collate(samples):
    """A batch of the samples that decoded, and the (file, reason) of those that did not."""
    failed = [s[1] for s in samples if s[0] is None]
    samples = [s for s in samples if s[0] is not None]
    if not samples:
        return None, None, failed
    images = torch.from_numpy(np.stack([s[0] for s in samples])).permute(0, 3, 1, 2)  # NHWC memory
    labels = torch.tensor([s[1] for s in samples], dtype=torch.int64)
    return images, labels, failed


def _leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """A worker leaves stop signals to the main process: a Ctrl-C in a terminal, or a scheduler
    signalling the whole job, reaches every process, and the main process decides when to stop
    (a training run finishes its step and checkpoints); a worker that died of it would fail that
    step. So a worker ignores SIGINT and SIGUSR1, and takes SIGTERM only from its parent (the
    DataLoader's shutdown, multiprocessing's at exit): a thread waits for it with
    `sigwaitinfo`, which says who sent it. Workers still end with the main process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # threads started later inherit the mask

    def wait_for_sigterm():
        while True:
            if signal.sigwaitinfo({signal.SIGTERM}).si_pid in (parent, 0):  # 0: the kernel's own
                os._exit(0)
    threading.Thread(target=wait_for_sigterm, name="sigterm-from-parent", daemon=True).start()


@register_backend
class Backend(ScannedBackend):
    name = "torch"
    starts_mid_epoch = True  # iter_epoch(epoch, start=k) begins at batch k without loading those before

    def __init__(self, path, config):
        super().__init__(path, config)
        self.dataset = _Files(self.index.files, self.index.labels, config.image_size, config.random_crop,
                              config.seed)

    def iter_epoch(self, epoch: int, start: int = 0):
        c = self.config
        order = self.epoch_order(epoch)
        batch_list = [[(int(i), epoch) for i in b] for b in batches(order, c.batch_size, c.drop_last)][start:]
        on_cuda = c.device.type == "cuda"
        loader = DataLoader(self.dataset, batch_sampler=batch_list, num_workers=c.num_workers,
                            collate_fn=_collate, pin_memory=on_cuda,
                            worker_init_fn=_leave_stop_signals_to_the_main_process if c.num_workers else None,
                            persistent_workers=False, prefetch_factor=4 if c.num_workers else None)
        with fork_safe() if c.num_workers else nullcontext():  # the workers are forked here (if any)
            epoch_batches = iter(loader)
        for images, labels, failed in epoch_batches:
            if failed and c.on_error == "raise":
                raise unreadable_at_load_time(*failed[0])
            self.skipped += [f for f in failed if f not in self.skipped]
            if images is None:
                continue
            if on_cuda:
                images = images.to(c.device, non_blocking=True)
                labels = labels.to(c.device, non_blocking=True)
            yield images, labels
