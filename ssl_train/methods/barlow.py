"""Barlow Twins (Zbontar et al. 2021): cross-correlation of BN-standardised embeddings -> identity.

Standardisation as the official code's `BatchNorm1d(affine=False)` in training mode: the biased
(1/N) variance plus BatchNorm's eps 1e-5 under the square root (the paper's pseudo-code writes
`std(0)`, which in torch is the unbiased one: +3.8% loss at N=256). Loss = sum_i (1 - C_ii)^2 +
lambda sum_{i != j} C_ij^2 with C = A^T B / N.
"""
from __future__ import annotations

import torch

from ssl_train.dist import gather_with_grad
from ssl_train.methods.base import Method, register_method


def barlow_loss(a: torch.Tensor, b: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    a, b = gather_with_grad(a), gather_with_grad(b)
    n = a.shape[0]
    a = (a - a.mean(0)) / torch.sqrt(a.var(0, unbiased=False) + 1e-5)
    b = (b - b.mean(0)) / torch.sqrt(b.var(0, unbiased=False) + 1e-5)
    c = a.T @ b / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on + lambd * off


@register_method
class BarlowTwins(Method):
    name = "barlow"

    def loss(self, z):
        pairs = [(i, j) for i in range(len(z)) for j in range(i + 1, len(z))]
        return sum(barlow_loss(z[i], z[j], self.cfg.barlow_lambda) for i, j in pairs) / len(pairs)
