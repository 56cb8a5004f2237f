"""torchaug's batch transforms (the closest peer: torchvision-style transforms on a whole batch).

Optional and not a dependency: torchaug 0.6.1 pins `torchvision<0.20`, which the project's
torchvision does not meet; `pip install --no-deps torchaug` runs it with ours. Per sample where
torchaug can draw per sample (`batch_transform=True`; crops, erasing and colour jitter with one
chunk per image), per batch where it cannot: its RandomCrop, RandAugment, TrivialAugmentWide and
AutoAugment draw one parameter set (one op) for the whole batch, so on those it does less work
than augpipe and torchvision (as Kornia's auto-augment does).

Each op's transform is its `counterparts.torchaug(op, target)` (`target.lib`: `torchaug.transforms`,
`target.batch`: the batch size, for one chunk per image).
"""
from __future__ import annotations

import functools

import torch

from augpipe.interop.engines._torchvision import TorchvisionTarget

KEY = "torchaug"


def build(policy, **_):
    from torchaug import transforms  # ImportError here, at build time, when torchaug is not installed

    @functools.lru_cache(maxsize=4)
    def composes(n: int):
        """One torchaug chain per view for batches of `n` (per-sample chunks are counted in images)."""
        return [transforms.Compose([transforms.ToDtype(torch.float32, scale=True)]
                                   + [TorchvisionTarget("torchaug", transforms, view.size, n).translate(KEY, op)
                                      for op in view.ops]) for view in policy.views]

    def run(images: torch.Tensor, generator=None):
        return [compose(images) for compose in composes(images.shape[0])]
    return run
