"""Optimisers (LARS, SGD, AdamW), the lr scaling rule, and warm-up + cosine schedule."""
from __future__ import annotations

import math

import torch


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al. 2017), as in SimCLR/BYOL.

    Biases and normalisation parameters (1-D tensors) get neither weight decay nor adaptation.
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=1e-6, eta=0.02):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if p.ndim > 1:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.norm(p), torch.norm(grad)
                    trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                        torch.ones_like(w_norm))
                    grad = grad.mul(trust)
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(grad)
                p.add_(buf, alpha=-group["lr"])


def scaled_lr(base: float, batch_size: int, rule: str) -> float:
    """lr for `batch_size` under `rule`: linear (x B/256), sqrt (x sqrt(B/256)) or none."""
    return base * LR_RULES[rule](batch_size / 256)


OPTIMIZERS = {
    "lars": lambda params, lr, wd, momentum: LARS(params, lr=lr, momentum=momentum, weight_decay=wd),
    "sgd": lambda params, lr, wd, momentum: torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd),
    "adamw": lambda params, lr, wd, momentum: adamw(params, lr=lr, weight_decay=wd),
}
LR_RULES = {"linear": lambda ratio: ratio, "sqrt": math.sqrt, "none": lambda ratio: 1.0}


def build_optimizer(name: str, params, lr: float, weight_decay: float, momentum: float):
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr, weight_decay, momentum)


def adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused where this torch has it: the fused step keeps its step counter on the device,
    where the default implementation reads it back to the host twice per parameter group."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch: no fused kernel for this device
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up to `peak`, then cosine decay to 0."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
