"""What the ImageFolder-reading backends share: which files, which labels, which order."""
from __future__ import annotations

import numpy as np

from loaders.order import epoch_indices, subset_members
from loaders.scan import scan_image_folder


class ScannedBackend:
    """Scans the folder once (the shared scan) and answers, per epoch, which dataset indices
    this rank loads in which order (the shared order)."""

    def __init__(self, path, config):
        index = scan_image_folder(path, on_error=config.on_error)
        self.config, self.index = config, index
        self.members = subset_members(len(index), config.subset, config.seed)
        self.size, self.classes, self.skipped = len(self.members), index.classes, list(index.skipped)

    def epoch_order(self, epoch: int) -> np.ndarray:
        c = self.config
        order = epoch_indices(self.size, epoch=epoch, seed=c.seed, shuffle=c.shuffle, rank=c.rank,
                              world_size=c.world_size, drop_last=c.drop_last)
        return self.members[order]
