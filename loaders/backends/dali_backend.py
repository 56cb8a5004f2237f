"""`dali` backend: file paths in our order -> DALI reads, decodes, crops -> `DALIGenericIterator`.

Which files, in which order, on which rank, comes from `loaders.backends.order` (the one place that decides
order and sharding), so DALI loads exactly the samples the other backends load, in the same
batches. Our order enters as file *paths* through `fn.external_source` (DALI's documented way to
bring a custom order), one pipeline for the whole run; DALI's own threads read the files
(`fn.io.file.read`) and decode them, at close to the speed of a bare `fn.readers.file`
pipeline; feeding the bytes read in Python, or DALI's parallel external source, was not faster
(benchmarks/kernel-choices.json, `dali-external-source`). Two choices matter: prefetching 3
batches (the Python feed gets ahead of the decoding threads), and no DALI transpose: images leave
DALI as HWC and become `[B, 3, S, S]` as a permuted view (NHWC memory, like the `torch` backend's
batches), which saves a full copy per batch.

Same pixels as the reference (`loaders.sources.decode`), within DALI's decoders and resampling:
- Geometry without random crops: the centre square of side min(H, W) at the same integer offset
  as `decode.center_square` (`fn.decoders.image_slice` from `fn.peek_image_shape`), then resized
  to `image_size`. (`resize_shorter` + centre crop put elongated images half a pixel off: 44 grey
  levels on a 3x300 image.)
- Files the scan found in a mode DALI decodes differently (`decode.needs_reference`: 16-bit
  grey came out 37 grey levels off) are decoded once by the reference decoder into an 8-bit PNG
  in a private temporary folder, and DALI reads that instead.

A file that fails at load time (it changed after the scan): DALI stops the pipeline. The batches in
flight are checked with the reference decoder; `on_error="skip"` leaves the failing files out (in
`loader.skipped`, and for the rest of the run) and restarts the pipeline at the batch that failed;
`"raise"` names the file. An error no file explains is raised as it came.

Checked where: the CPU path (`device="cpu"` operators, `device_id=None`) runs in CI; the GPU path
(`decoders.*(device="mixed")`, nvJPEG, GPU resize) is written from DALI's documentation and is
exercised only by `make gpu-check` on a machine that has DALI and CUDA.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections import deque
from pathlib import Path

import numpy as np

from loaders.backends.base import ScannedBackend, register_backend
from loaders.backends.order import batches
from loaders.sources.decode import load_rgb, needs_reference
from loaders.sources.scan import failure_reason, unreadable_at_load_time

PREFETCH = 3


def decode_square(encoded, config):
    """DALI graph: encoded images -> HWC uint8 `[S, S, 3]`: the centre square (the reference
    geometry) or `config.random_crop` decoded on the CPU or, for a CUDA device, by nvJPEG
    (`mixed`), then resized to `config.image_size`. Shared by the folder and shard readers."""
    from nvidia.dali import fn, types
    from nvidia.dali import math as dmath

    decoder = "mixed" if config.device.type == "cuda" else "cpu"
    if config.random_crop is None:
        hw = fn.peek_image_shape(encoded)
        h, w = hw[0], hw[1]
        side = dmath.min(h, w)
        anchor = fn.stack((h - side) // 2, (w - side) // 2)
        images = fn.decoders.image_slice(encoded, anchor, fn.stack(side, side), axis_names="HW",
                                         device=decoder, output_type=types.RGB)
    else:
        scale, ratio = config.random_crop
        images = fn.decoders.image_random_crop(encoded, device=decoder, output_type=types.RGB,
                                               random_area=list(scale), random_aspect_ratio=list(ratio))
    size = config.image_size
    return fn.resize(images, size=(size, size), antialias=True)


class _EpochSource:
    """Batches of (encoded path, label) of one epoch, from batch `first` on; StopIteration ends
    the epoch. Remembers which batches DALI took and has not handed out yet (`in_flight`)."""

    def __init__(self, backend: "Backend", epoch: int, first: int = 0):
        c = backend.config
        self.backend = backend
        self.batches = batches(backend.epoch_order(epoch), c.batch_size, c.drop_last)
        self.next = first
        self.in_flight: deque[int] = deque()

    def exhausted(self) -> bool:
        """No batch with a file left to load (from `next` on)."""
        excluded = self.backend.excluded
        return all(int(i) in excluded for b in self.batches[self.next:] for i in b)

    def __call__(self):
        excluded = self.backend.excluded
        while self.next < len(self.batches):
            batch = [int(i) for i in self.batches[self.next] if int(i) not in excluded]
            self.in_flight.append(self.next)
            self.next += 1
            if batch:  # a batch whose files were all left out is no batch
                labels = np.asarray([self.backend.index.labels[i] for i in batch], dtype=np.int64).reshape(-1, 1)
                return [self.backend.encoded_path(i) for i in batch], labels
            self.in_flight.pop()
        raise StopIteration


@register_backend
class Backend(ScannedBackend):
    name = "dali"

    def __init__(self, path, config):
        import nvidia.dali  # noqa: F401  (fail here, with the import error, not mid-epoch)
        super().__init__(path, config)
        self.excluded: set[int] = set()          # files that failed at load time (skip mode)
        self._converted: dict[int, str] = {}     # index -> reference-decoded PNG
        self._tmp: str | None = None
        self._source: _EpochSource | None = None
        self._iterator, self._finished = None, False

    # --- what DALI reads -------------------------------------------------------------------
    def encoded_path(self, i: int) -> np.ndarray:
        path = self.index.files[i]
        if self.index.modes and needs_reference(self.index.modes[i]):
            path = self._converted.get(i) or self._convert(i)
        return np.frombuffer(os.fsencode(path), dtype=np.uint8)

    def _convert(self, i: int) -> str:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="augpipe-dali-")
            weakref.finalize(self, shutil.rmtree, self._tmp, True)
        target = str(Path(self._tmp) / f"{i}.png")
        load_rgb(self.index.files[i]).save(target, format="PNG")
        self._converted[i] = target
        return target

    def _pipeline(self):
        from nvidia.dali import fn, pipeline_def, types

        c = self.config
        on_gpu = c.device.type == "cuda"

        @pipeline_def(batch_size=c.batch_size, num_threads=max(1, c.num_workers),
                      device_id=(c.device.index or 0) if on_gpu else None, seed=c.seed,
                      prefetch_queue_depth=PREFETCH)
        def pipe():
            path, label = fn.external_source(source=lambda: self._source(), num_outputs=2, batch=True,
                                             dtype=[types.UINT8, types.INT64])
            images = decode_square(fn.io.file.read(path), c)
            if on_gpu:
                label = label.gpu()
            return images, label

        return pipe()

    # --- epochs ----------------------------------------------------------------------------
    def _start(self, source: _EpochSource) -> None:
        """Feed `source` (an epoch from one of its batches): the running pipeline goes on if the last epoch ran to
        its end (a pipeline per epoch measured 0.90-0.94x of the bare reader), else a new one."""
        from nvidia.dali.plugin.base_iterator import LastBatchPolicy
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        self._source = source  # before the iterator (re)starts prefetching
        if self._iterator is not None and self._finished:
            self._iterator.reset()
        else:  # first epoch, a failed pipeline, or an epoch left early (DALI cannot reset mid-epoch)
            policy = LastBatchPolicy.DROP if self.config.drop_last else LastBatchPolicy.PARTIAL
            self._iterator = DALIGenericIterator([self._pipeline()], ["images", "labels"],
                                                 last_batch_policy=policy, auto_reset=False)
        self._finished = False

    def iter_epoch(self, epoch: int):
        first, start = 0, True
        while True:
            try:
                if start:  # DALI's iterator decodes its first batches as it is made or reset
                    source = _EpochSource(self, epoch, first)
                    if source.exhausted():
                        return  # an empty epoch, or what was left of it was left out
                    self._start(source)
                    start = False
                batch = next(self._iterator)
            except StopIteration:
                self._finished = True
                return
            except RuntimeError as err:  # DALI stops the pipeline when a file fails to read or decode
                first, start = self._find_failed(err), True
                continue
            self._source.in_flight.popleft()
            images, labels = batch[0]["images"], batch[0]["labels"].view(-1)
            if images.device != self.config.device:
                images, labels = images.to(self.config.device), labels.to(self.config.device)
            yield images.permute(0, 3, 1, 2), labels

    def _find_failed(self, err: RuntimeError) -> int:
        """The files of the batches in flight that the reference decoder cannot load: named in an
        error (`raise`), or left out (`skip`); returns the batch to restart from."""
        source = self._source
        failed = []
        for b in source.in_flight:
            for i in source.batches[b]:
                i = int(i)
                if i in self.excluded:
                    continue
                try:
                    load_rgb(self.index.files[i])
                except Exception as decode_err:  # Pillow raises many types for a broken file
                    failed.append((i, failure_reason(decode_err)))
        self._iterator = None  # the pipeline is no longer valid
        if not failed:
            raise err
        if self.config.on_error == "raise":
            i, reason = failed[0]
            raise unreadable_at_load_time(self.index.files[i], reason) from None
        for i, reason in failed:
            self.excluded.add(i)
            self.skipped.append((self.index.files[i], reason))
        return source.in_flight[0]
