"""BYOL (Grill et al. 2020): online predictor regresses an EMA target's projection.

The target (backbone + projector copies) follows the online network with momentum
tau = 1 - (1 - tau_base) * (cos(pi * progress) + 1) / 2, from `ema` up to 1 at the end of training.

Loss convention: the paper's (and solo-learn's) symmetric *sum* L + L~ of the two views'
normalised MSE, 2 - 2 cos(q, z'), each averaged over the batch; so learning rates from the paper
and its peers carry over (a mean of the two would halve the effective lr under SGD/LARS).
With V > 2 views, every ordered pair counts and the sum is divided by V - 1 (the paper's sum
for V = 2).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ssl_train.methods.base import Method, cosine_momentum, ema_update, mlp, per_view, register_method


def byol_loss(online: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Sum over ordered pairs of views i != j of mean(2 - 2 cos(online_i, target_j)), / (V - 1)."""
    v = len(online)
    pairs = [2 - 2 * F.cosine_similarity(online[i], targets[j], dim=1).mean()
             for i in range(v) for j in range(v) if i != j]
    return sum(pairs) / (v - 1)


@register_method
class BYOL(Method):
    name = "byol"

    def __init__(self, feature_dim, cfg, num_classes=None):
        super().__init__(feature_dim, cfg, num_classes)
        self.projector = self.online_projector(feature_dim, cfg)
        self.predictor = mlp(cfg.proj_dim, cfg.proj_hidden, cfg.proj_dim, 2)
        self.target_backbone = None
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def online_projector(self, feature_dim, cfg):
        """The online projector, which the target copies (BYOL: the common one)."""
        return self.projector

    def setup(self, backbone):
        if self.target_backbone is None:
            self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)

    def predict_and_target(self, backbone, views):
        """The first view's features, every view's online prediction and its target projection."""
        first, feats = self.embed(backbone, views)
        online = [self.predictor(self.projector(f)) for f in feats]
        with torch.no_grad():
            targets = [self.target_projector(f) for f in per_view(self.target_backbone, views)]
        return first, online, targets

    def forward(self, backbone, views, labels=None):
        first, online, targets = self.predict_and_target(backbone, views)
        return byol_loss(online, targets), first

    def on_step_end(self, backbone, progress):
        ema_update([(backbone, self.target_backbone), (self.projector, self.target_projector)],
                   cosine_momentum(self.cfg.ema, progress))
