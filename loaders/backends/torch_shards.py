"""The torch backend on WebDataset shards (`loaders.sources.shards`): the `webdataset` library streams each
rank's shards through DataLoader workers, Pillow decodes with the reference geometry
(`loaders.sources.decode`: the centre square resized), so a folder and its shards give the same pixels.

Exactly once per epoch across ranks and workers (tested at world sizes 1, 2 and 3). Workers hand
over what they decoded and the main process cuts it into batches of exactly `batch_size` (one
partial batch at the end unless `drop_last`). With `drop_last` and several ranks (DDP training),
every rank yields the same number of batches, the smallest rank's (from the shard sizes in
`index.json`), so no rank waits alone in a collective: with equal shards nothing more is left out
than `drop_last` leaves anyway. Not for shards: `subset` and decode-time
`random_crop` (one line says so). A sample that does not decode is named (`shard.tar:key`) in
one line, or with `on_error="skip"` left out and listed in `loader.skipped`. DALI streams shards
itself (`loaders.backends.dali_shards`); FFCV reads them unpacked once into the cache as an
ImageFolder (`loaders.sources.shards.as_folder`), then converts that folder to its `.beton`.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from torch.utils.data import DataLoader

from loaders.sources.decode import center_resized
from loaders.sources.forking import fork_safe
from loaders.sources.scan import unreadable_at_load_time
from loaders.sources.shards import ShardReader, dataset, open_image

SHUFFLE_BUFFER = 1000  # samples per worker held for the seeded in-shard shuffle


def _collate(samples):
    """(images, labels, failures) of a worker's piece: the samples that decoded, and the
    (name, reason) of those that did not."""
    good = [s for s in samples if s[2] is None]
    images = torch.from_numpy(np.stack([s[0] for s in good])) if good else torch.empty(0, 1, 1, 3, dtype=torch.uint8)
    return images.permute(0, 3, 1, 2), torch.tensor([s[1] for s in good], dtype=torch.int64), \
        [s[2] for s in samples if s[2] is not None]


class ShardBackend(ShardReader):
    name = "torch"

    def __init__(self, shards: list[str], config):
        if config.random_crop:
            raise ValueError("random_crop: not available for WebDataset shards on the torch backend; crop on the "
                             "device with augpipe, or read them with the dali backend")
        super().__init__(shards, config)

    def iter_epoch(self, epoch: int):
        c = self.config
        mine = self.mine(epoch)
        size = c.image_size
        samples = dataset(mine, seed=c.seed, epoch=epoch, rank=c.rank, shuffle_buffer=SHUFFLE_BUFFER if c.shuffle else 0,
                          decode=lambda data: center_resized(open_image(data), size))
        workers = min(c.num_workers, len(mine))
        loader = DataLoader(samples.batched(c.batch_size, collation_fn=_collate, partial=True),
                            batch_size=None, num_workers=workers, pin_memory=c.device.type == "cuda")
        with fork_safe() if workers else nullcontext():
            pieces = iter(loader)
        limit = self.num_batches(epoch) if c.drop_last else None
        for count, (images, labels) in enumerate(_exact_batches(self._checked(pieces), c.batch_size, c.drop_last)):
            if limit is not None and count == limit:
                break
            yield images.to(c.device, non_blocking=True), labels.to(c.device, non_blocking=True)

    def _checked(self, pieces):
        """The workers' pieces without their failed samples: each named in one line
        (`on_error="raise"`), or listed in `skipped`."""
        for images, labels, failures in pieces:
            if failures and self.config.on_error == "raise":
                raise unreadable_at_load_time(*failures[0])
            self.skipped.extend(tuple(f) for f in failures)
            if len(labels):
                yield images, labels


def _exact_batches(pieces, batch_size: int, drop_last: bool):
    """Batches of exactly `batch_size` cut from the workers' pieces (the last one partial unless `drop_last`)."""
    held_images, held_labels, held = [], [], 0
    for images, labels in pieces:
        held_images.append(images)
        held_labels.append(labels)
        held += len(labels)
        while held >= batch_size:
            images, labels = torch.cat(held_images), torch.cat(held_labels)
            yield images[:batch_size], labels[:batch_size]
            held_images, held_labels, held = [images[batch_size:]], [labels[batch_size:]], held - batch_size
    if held and not drop_last:
        yield torch.cat(held_images), torch.cat(held_labels)
