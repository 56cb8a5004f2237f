"""The `dali` backend on WebDataset shards (`loaders.sources.shards`): DALI's own `fn.readers.webdataset`
streams each rank's shards, DALI decodes (nvJPEG on a CUDA device) with the folder backend's
geometry (`loaders.backends.dali_backend.decode_square`), so shards and their folder give the same pixels.

The same split as the torch backend's: each epoch this rank reads `loaders.sources.shards.epoch_shards`
(the seeded shard permutation, every W-th shard), so every sample is seen exactly once per epoch
across ranks, and `drop_last` gives every rank the same number of full batches. Within the
rank's shards DALI's reader shuffles samples in a buffer seeded by (seed, epoch, rank). One
pipeline per epoch: DALI's reader cannot start an arbitrary epoch (resume) or take a new shard
list, and it starts fast because DALI's index of each shard (`wds2idx`) is written once into the
cache (`loaders.sources.shards.dali_index`).

Labels: the `.cls` component (ASCII digits) is read as bytes, padded to the batch's longest and
parsed on the device (`parse_labels`); a sample without one is unlabeled (-1). Shards whose
labels are `.json` are read unpacked into the cache as a folder (DALI has no JSON parser).

Unlike the torch backend, decode-time `random_crop` works (`fn.decoders.image_random_crop`);
`subset` does not (shards are streams). A sample that does not decode stops DALI's pipeline;
it is found with the reference decoder and named in one line (`shard.tar:key`), whatever
`on_error` says: DALI cannot leave one sample of a stream out (the torch backend can).
"""
from __future__ import annotations

import numpy as np
import torch

from loaders.backends.dali_backend import PREFETCH, decode_square
from loaders.sources.scan import DatasetError, failure_reason
from loaders.sources.shards import (
    IMAGE_EXTENSIONS,
    ShardReader,
    dali_index,
    label_component,
    open_image,
    sample_image,
    sample_name,
    samples,
)

SHUFFLE_BUFFER = 1000  # samples held for the seeded in-shard shuffle, as the torch backend's
READER = "shards"


def parse_labels(raw: torch.Tensor) -> torch.Tensor:
    """int64 `[B]` from `[B, L]` uint8 ASCII (zero-padded `.cls` bytes): the decimal digits of
    each row read as one number (other bytes, such as a trailing newline, ignored), -1 for a row
    without digits. Elementwise on the device: no host read."""
    digits = raw.to(torch.int64) - ord("0")
    is_digit = (digits >= 0) & (digits <= 9)
    value = torch.zeros(raw.shape[0], dtype=torch.int64, device=raw.device)
    for j in range(raw.shape[1]):
        value = torch.where(is_digit[:, j], value * 10 + digits[:, j], value)
    return torch.where(is_digit.any(dim=1), value, torch.full_like(value, -1))


class DaliShardBackend(ShardReader):
    name = "dali"

    def __init__(self, shards: list[str], config):
        import nvidia.dali  # noqa: F401  (fail here, with the import error, not mid-epoch)
        super().__init__(shards, config)
        self.index = dict(zip(shards, dali_index(shards)))

    @classmethod
    def reads(cls, shards: list[str]) -> bool:
        """`.json` labels are read unpacked into a folder: DALI has no JSON parser."""
        return label_component(shards[0]) != "json"

    def _pipeline(self, mine: list[str], epoch: int):
        from nvidia.dali import fn, pipeline_def

        c = self.config
        on_gpu = c.device.type == "cuda"
        seed = int(np.random.SeedSequence([c.seed, epoch, c.rank]).generate_state(1)[0] % 2**31)

        @pipeline_def(batch_size=c.batch_size, num_threads=max(1, c.num_workers),
                      device_id=(c.device.index or 0) if on_gpu else None, seed=seed,
                      prefetch_queue_depth=PREFETCH)
        def pipe():
            encoded, label = fn.readers.webdataset(
                paths=mine, index_paths=[self.index[s] for s in mine], ext=[";".join(IMAGE_EXTENSIONS), "cls"],
                missing_component_behavior="empty", random_shuffle=c.shuffle, initial_fill=SHUFFLE_BUFFER,
                seed=seed, name=READER)
            label = fn.pad(label, axes=(0,), fill_value=0)  # to the batch's longest `.cls`
            if on_gpu:
                label = label.gpu()
            return decode_square(encoded, c), label

        return pipe()

    def iter_epoch(self, epoch: int):
        from nvidia.dali.plugin.base_iterator import LastBatchPolicy
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        c = self.config
        mine = self.mine(epoch)
        if not mine:
            return
        policy = LastBatchPolicy.DROP if c.drop_last else LastBatchPolicy.PARTIAL
        batches = DALIGenericIterator([self._pipeline(mine, epoch)], ["images", "labels"], reader_name=READER,
                                      last_batch_policy=policy, auto_reset=False)
        limit = self.num_batches(epoch) if c.drop_last else None
        count = 0
        while limit is None or count < limit:
            try:
                batch = next(batches)[0]
            except StopIteration:
                return
            except RuntimeError:  # DALI stops the pipeline when a sample fails to decode
                failure = _named_failure(mine)
                if failure is None:
                    raise
                raise failure from None
            images, labels = batch["images"], parse_labels(batch["labels"])
            if images.device != c.device:
                images, labels = images.to(c.device), labels.to(c.device)
            count += 1
            yield images.permute(0, 3, 1, 2), labels


def _named_failure(shards: list[str]) -> DatasetError | None:
    """The first sample of `shards` that the reference decoder cannot load, as the loaders' one-line
    error, or None when every sample decodes (the error was not a damaged sample)."""
    for sample in samples(shards):
        try:
            open_image(sample_image(sample))
        except Exception as err:  # Pillow raises many types for a damaged image
            return DatasetError(f"{sample_name(sample)}: unreadable at load time ({failure_reason(err)}); the dali "
                                "backend cannot leave one sample of a shard out: rewrite the shard, or read it "
                                "with the torch backend and on_error='skip'")
    return None
