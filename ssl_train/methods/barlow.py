"""Barlow Twins (Zbontar et al. 2021): cross-correlation of BN-standardised embeddings -> identity."""
from __future__ import annotations

import torch

from ssl_train.dist import gather_with_grad
from ssl_train.methods.base import Method


def barlow_loss(a: torch.Tensor, b: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    a, b = gather_with_grad(a), gather_with_grad(b)
    n = a.shape[0]
    a = (a - a.mean(0)) / (a.std(0) + 1e-6)
    b = (b - b.mean(0)) / (b.std(0) + 1e-6)
    c = a.T @ b / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on + lambd * off


class BarlowTwins(Method):
    def loss(self, z):
        pairs = [(i, j) for i in range(len(z)) for j in range(i + 1, len(z))]
        return sum(barlow_loss(z[i], z[j], self.cfg.barlow_lambda) for i, j in pairs) / len(pairs)
