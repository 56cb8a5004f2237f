"""VICReg (Bardes et al. 2022): invariance + variance + covariance terms (25 / 25 / 1).

As the official code: the variance term is the mean of the two branches' hinge terms (the
paper's pseudo-code adds them; the official code, solo-learn and lightly average), unbiased
covariance (1/(N-1)), eps 1e-4 inside the square root.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_train.dist import gather_with_grad
from ssl_train.methods.base import Method, register_method


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def vicreg_loss(a: torch.Tensor, b: torch.Tensor, sim_w=25.0, var_w=25.0, cov_w=1.0) -> torch.Tensor:
    inv = F.mse_loss(a, b)
    a, b = gather_with_grad(a), gather_with_grad(b)   # statistics over the global batch
    n, d = a.shape
    a, b = a - a.mean(0), b - b.mean(0)
    std_a, std_b = torch.sqrt(a.var(0) + 1e-4), torch.sqrt(b.var(0) + 1e-4)
    var = F.relu(1 - std_a).mean() / 2 + F.relu(1 - std_b).mean() / 2
    cov_a, cov_b = a.T @ a / (n - 1), b.T @ b / (n - 1)
    cov = _off_diagonal(cov_a).pow(2).sum() / d + _off_diagonal(cov_b).pow(2).sum() / d
    return sim_w * inv + var_w * var + cov_w * cov


@register_method
class VICReg(Method):
    name = "vicreg"

    def loss(self, z):
        pairs = [(i, j) for i in range(len(z)) for j in range(i + 1, len(z))]
        return sum(vicreg_loss(z[i], z[j]) for i, j in pairs) / len(pairs)
