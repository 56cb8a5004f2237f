"""SimCLR's InfoNCE (NT-Xent) with a controlled number of negatives.

For 2 views of N images (gathered over ranks), the 2N embeddings are L2-normalised and each one is
an anchor: its positive is the other view of its image, its candidate negatives are the 2N-2
embeddings of *other* images (both views).
- `negatives="all"`: every anchor uses all 2N-2 candidates (the usual NT-Xent).
- `negatives=K`: every anchor uses K candidates drawn uniformly without replacement, independently
  per anchor and per step. `K=1` is the seed paper's single negative.
Loss per anchor: -log( e^{s+/t} / (e^{s+/t} + sum_{k in negatives} e^{s_k/t}) ), averaged.
With more than 2 views (multi-crop), every pair of views of the same image is a positive pair;
negatives are still drawn from other images only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_train.dist import gather_with_grad
from ssl_train.methods.base import Method, register_method


def info_nce(z: list[torch.Tensor], temperature: float, negatives: int | None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    v, n = len(z), z[0].shape[0]
    emb = F.normalize(torch.cat(z), dim=1)                 # [V*N, D], view-major
    image = torch.arange(n, device=emb.device).repeat(v)   # image id of each row
    sim = emb @ emb.T / temperature                        # [V*N, V*N]
    same_image = image[:, None] == image[None, :]
    candidates = ~same_image                                # other images' views
    if negatives is not None:
        per_anchor = v * (n - 1)  # known from the shapes: no read of `candidates` back to the host
        if negatives > per_anchor:
            raise ValueError(f"negatives={negatives} but only {per_anchor} candidates "
                             f"per anchor in a batch of {n} images x {v} views")
        # K uniform draws without replacement per anchor: the K largest of random keys.
        keys = torch.rand(sim.shape, device=emb.device, generator=generator)
        keys = keys.masked_fill(~candidates, -1.0)
        chosen = torch.zeros_like(candidates)
        chosen.scatter_(1, keys.topk(negatives, dim=1).indices, True)
        candidates = chosen
    losses = []
    for pos_offset in range(1, v):  # positive: the same image in view (view + offset) mod V
        pos_cols = (torch.arange(v * n, device=emb.device) + pos_offset * n) % (v * n)
        pos = sim.gather(1, pos_cols[:, None])
        neg = sim.masked_fill(~candidates, float("-inf"))
        logits = torch.cat([pos, neg], dim=1)
        losses.append(-torch.log_softmax(logits, dim=1)[:, 0])
    return torch.stack(losses).mean()


@register_method
class SimCLR(Method):
    name = "simclr"

    def __init__(self, feature_dim, cfg, num_classes=None):
        super().__init__(feature_dim, cfg, num_classes)
        self.negatives = None if cfg.negatives == "all" else int(cfg.negatives)
        self.generator = None

    def begin_epoch(self, generator):
        self.generator = generator

    def loss(self, z):
        z = [gather_with_grad(x) for x in z]
        return info_nce(z, self.cfg.temperature, self.negatives, self.generator)
