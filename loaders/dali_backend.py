"""`dali` backend: `fn.readers.file` + `fn.decoders.image`, output through `DALIGenericIterator`.

The reader gets this epoch's file list for this rank (from `loaders.order`, the one place that
decides order and sharding), with its own shuffling off; so DALI loads exactly the samples the
other backends load. That is why the pipeline is rebuilt per epoch rather than sharded with
`shard_id/num_shards` (which would apply DALI's own split and shuffle).

Checked where: the CPU path (`device="cpu"` operators, `device_id=None`) runs in CI; the GPU path
(`decoders.image(device="mixed")`, nvJPEG, GPU resize) is written from DALI's documentation and is
exercised only by `make gpu-check` on a machine that has DALI and CUDA.
"""
from __future__ import annotations

from loaders.base import ScannedBackend


class Backend(ScannedBackend):
    def __init__(self, path, config):
        import nvidia.dali  # noqa: F401  (fail here, with the import error, not mid-epoch)
        super().__init__(path, config)

    def _pipeline(self, files, labels):
        from nvidia.dali import fn, pipeline_def, types

        c = self.config
        on_gpu = c.device.type == "cuda"
        size = c.image_size

        @pipeline_def(batch_size=c.batch_size, num_threads=max(1, c.num_workers),
                      device_id=c.device.index or 0 if on_gpu else None, seed=c.seed)
        def pipe():
            encoded, label = fn.readers.file(files=files, labels=labels, random_shuffle=False,
                                             name="reader")
            decoder = "mixed" if on_gpu else "cpu"
            if c.random_crop is None:
                images = fn.decoders.image(encoded, device=decoder, output_type=types.RGB)
                images = fn.resize(images, resize_shorter=size, antialias=True)
                images = fn.crop(images, crop=(size, size))  # centre crop by default
            else:
                scale, ratio = c.random_crop
                images = fn.decoders.image_random_crop(encoded, device=decoder, output_type=types.RGB,
                                                       random_area=list(scale),
                                                       random_aspect_ratio=list(ratio))
                images = fn.resize(images, size=(size, size), antialias=True)
            images = fn.transpose(images, perm=[2, 0, 1])
            if on_gpu:
                label = label.gpu()
            return images, fn.cast(label, dtype=types.INT64)

        return pipe()

    def iter_epoch(self, epoch: int):
        from nvidia.dali.plugin.base_iterator import LastBatchPolicy
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        c = self.config
        order = self.epoch_order(epoch)
        if len(order) == 0:
            return
        files = [self.index.files[i] for i in order]
        labels = [self.index.labels[i] for i in order]
        pipe = self._pipeline(files, labels)
        policy = LastBatchPolicy.DROP if c.drop_last else LastBatchPolicy.PARTIAL
        iterator = DALIGenericIterator([pipe], ["images", "labels"], reader_name="reader",
                                       last_batch_policy=policy, auto_reset=False)
        for batch in iterator:
            images, labels = batch[0]["images"], batch[0]["labels"].view(-1)
            if images.device != c.device:
                images, labels = images.to(c.device), labels.to(c.device)
            yield images, labels
