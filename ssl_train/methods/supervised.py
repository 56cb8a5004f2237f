"""Supervised ceiling: cross-entropy of a linear head on the backbone, over every view.

Not a JE-SSL method: it exists so that each experiment table can carry the supervised run of the
same backbone, data and budget as its upper reference (the random-init backbone is the floor).
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from ssl_train.methods.base import Method, register_method


@register_method
class Supervised(Method):
    name = "supervised"

    def __init__(self, feature_dim, cfg, num_classes: int | None = None):
        if not num_classes:
            raise ValueError("--method supervised needs labelled training data (its number of classes)")
        super().__init__(feature_dim, cfg)
        self.projector = nn.Linear(feature_dim, num_classes)  # the classification head

    def forward(self, backbone, views, labels=None):
        if labels is None:
            raise ValueError("--method supervised needs labels")
        first, feats = self.embed(backbone, views)
        return sum(F.cross_entropy(self.projector(f), labels) for f in feats) / len(feats), first
