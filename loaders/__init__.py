"""loaders: image batches (uint8 [N,3,S,S]) and labels (int64 [N]) on the target device.

    loader = loaders.build_loader("torch", "digits", batch_size=256, image_size=32)
    for images, labels in loader: ...

Backends `torch`, `dali`, `ffcv` share the ImageFolder scan (`scan`), the epoch order and
sharding (`order`) and the embedded dataset (`datasets`); they differ only in how bytes become
batches. This package imports none of augpipe / ssl_train: use it in any training loop.
"""
from loaders.api import BACKENDS, Loader, build_loader
from loaders.datasets import EMBEDDED, materialize, resolve_source
from loaders.scan import DatasetError, ImageIndex, scan_image_folder

__all__ = ["BACKENDS", "DatasetError", "EMBEDDED", "ImageIndex", "Loader", "build_loader", "materialize",
           "resolve_source", "scan_image_folder"]
