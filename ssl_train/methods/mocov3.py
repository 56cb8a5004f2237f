"""MoCo v3 (Chen, Xie and He 2021), after facebookresearch/moco-v3.

The base encoder (backbone + projector with a last affine-free BatchNorm) and a predictor; a
momentum encoder (a copy of backbone and projector, `--ema` cosine-raised to 1 as the reference's
`moco_m` schedule) gives the keys. The loss is symmetric InfoNCE: each view's query against the
other view's keys, gathered from every rank under DDP, the positive the same image's key, scaled by
2 x `--temperature` as the reference's. With V > 2 views every ordered pair counts and the sum is
divided by V - 1 (the reference's sum of two for V = 2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_train import dist
from ssl_train.methods.base import fp32, mlp, register_method
from ssl_train.methods.byol import BYOL


def moco_contrastive(query: torch.Tensor, keys: torch.Tensor, temperature: float, offset: int = 0) -> torch.Tensor:
    """InfoNCE of each query against every key (`keys`: all ranks'); query r's positive is key
    `offset + r` (this rank's first row among the gathered keys); x 2 temperature."""
    q, k = F.normalize(fp32(query), dim=1), F.normalize(fp32(keys), dim=1)
    logits = q @ k.T / temperature
    labels = torch.arange(q.shape[0], device=q.device) + offset
    return F.cross_entropy(logits, labels) * 2 * temperature


def mocov3_loss(queries: list[torch.Tensor], keys: list[torch.Tensor], temperature: float,
                offset: int = 0) -> torch.Tensor:
    """Sum over ordered pairs of views i != j of moco_contrastive(q_i, k_j), / (V - 1)."""
    v = len(queries)
    pairs = [moco_contrastive(queries[i], keys[j], temperature, offset) for i in range(v) for j in range(v) if i != j]
    return sum(pairs) / (v - 1)


@register_method
class MoCoV3(BYOL):
    """BYOL's architecture (online predictor, momentum encoder: `ssl_train.methods.byol`) with a
    projector ending in an affine-free BatchNorm and MoCo v3's contrastive loss."""
    name = "mocov3"

    def online_projector(self, feature_dim, cfg):
        return mlp(feature_dim, cfg.proj_hidden, cfg.proj_dim, max(cfg.proj_layers, 2), last_bn=True)

    def forward(self, backbone, views, labels=None):
        first, queries, keys = self.predict_and_target(backbone, views)
        offset = dist.rank() * views[0].shape[0]
        return mocov3_loss(queries, [dist.gather(k) for k in keys], self.cfg.temperature, offset), first
