"""loaders: image batches (uint8 [N,3,S,S]) and labels (int64 [N]) on the target device.

    loader = loaders.build_loader("torch", "digits", batch_size=256, image_size=32)
    for images, labels in loader: ...

Backends `torch`, `dali`, `ffcv` (and any registered with `register_backend`) meet one contract
(`loaders.backends.base.Backend`, docs/ARCHITECTURE.md) and share the ImageFolder scan (`scan`), the subset,
epoch order and sharding (`base.Selection`, `order`) and the embedded dataset (`datasets`); they
differ only in how bytes become batches. This package imports none of augpipe / ssl_train: use
it in any training loop.
"""
from loaders.build import Loader, build_loader
from loaders.backends.base import BACKENDS, Backend, LoaderConfig, Selection, register_backend
from loaders.sources.datasets import EMBEDDED, materialize, resolve_source
from loaders.sources.scan import DatasetError, ImageIndex, scan_image_folder

__all__ = ["BACKENDS", "Backend", "DatasetError", "EMBEDDED", "ImageIndex", "Loader", "LoaderConfig", "Selection",
           "build_loader", "materialize", "register_backend", "resolve_source", "scan_image_folder"]
