"""BYOL (Grill et al. 2020): online predictor regresses an EMA target's projection.

The target (backbone + projector copies) follows the online network with momentum
tau = 1 - (1 - tau_base) * (cos(pi * progress) + 1) / 2, from `ema` up to 1 at the end of training.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from ssl_train.methods.base import Method, mlp


class BYOL(Method):
    def __init__(self, feature_dim, cfg):
        super().__init__(feature_dim, cfg)
        self.predictor = mlp(cfg.proj_dim, cfg.proj_hidden, cfg.proj_dim, 2)
        self.target_backbone = None
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def setup(self, backbone):
        if self.target_backbone is None:
            self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)

    def forward(self, backbone, views, labels=None):
        first, feats = self.embed(backbone, views)
        online = [self.predictor(self.projector(f)) for f in feats]
        with torch.no_grad():
            target_bb = self.target_backbone
            tfeats = target_bb(torch.cat(views)).split([v.shape[0] for v in views])
            targets = [self.target_projector(f) for f in tfeats]
        losses = [2 - 2 * F.cosine_similarity(online[i], targets[j], dim=1).mean()
                  for i in range(len(views)) for j in range(len(views)) if i != j]
        return sum(losses) / len(losses), first

    @torch.no_grad()
    def on_step_end(self, backbone, progress):
        tau = 1 - (1 - self.cfg.ema) * (math.cos(math.pi * progress) + 1) / 2
        for online, target in ((backbone, self.target_backbone), (self.projector, self.target_projector)):
            for p, tp in zip(online.parameters(), target.parameters()):
                tp.mul_(tau).add_(p.detach(), alpha=1 - tau)
            for b, tb in zip(online.buffers(), target.buffers()):
                tb.copy_(b)
