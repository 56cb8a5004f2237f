"""What every method shares: the projector MLP and the forward over views."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from _augpipe_shared.registry import Registry
from ssl_train.methods import options as _options


def mlp(in_dim: int, hidden: int, out: int, layers: int = 2, last_bn: bool = False) -> nn.Sequential:
    """Linear-BN-ReLU blocks, then a plain Linear (optionally a final affine-free BN)."""
    mods, dim = [], in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        dim = hidden
    mods.append(nn.Linear(dim, out, bias=not last_bn))
    if last_bn:
        mods.append(nn.BatchNorm1d(out, affine=False))
    return nn.Sequential(*mods)


def per_view(module: nn.Module, views: list[torch.Tensor]) -> list[torch.Tensor]:
    """`module` over every view, batching each run of consecutive views of one shape."""
    out, start = [], 0
    while start < len(views):
        end = start + 1
        while end < len(views) and views[end].shape == views[start].shape:
            end += 1
        run = views[start:end]
        out += list(module(torch.cat(run) if len(run) > 1 else run[0]).split([v.shape[0] for v in run]))
        start = end
    return out


def fp32(x: torch.Tensor) -> torch.Tensor:
    """`x` in float32 at least (bf16 autocast outputs), float64 kept (the losses' tests)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def cosine_momentum(base: float, progress: float) -> float:
    """A teacher's momentum at `progress` (0 to 1) of training: from `base` up to 1 on a cosine
    (BYOL, MoCo v3 and DINO alike)."""
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


@torch.no_grad()
def ema_update(pairs: list[tuple[nn.Module, nn.Module]], momentum: float) -> None:
    """Each (online, teacher) pair: teacher parameters <- momentum x teacher + (1 - momentum) x
    online; buffers (BatchNorm's running statistics) are copied."""
    for online, teacher in pairs:
        for p, tp in zip(online.parameters(), teacher.parameters()):
            tp.mul_(momentum).add_(p.detach(), alpha=1 - momentum)
        for b, tb in zip(online.buffers(), teacher.buffers()):
            tb.copy_(b)


@dataclass
class NoOptions:
    """A method without options of its own."""


class Method(nn.Module):
    """A JE-SSL method: owns its heads and its loss, nothing of the loop.

    The contract (docs/ARCHITECTURE.md, "ssl_train: methods"): a subclass with a class attribute
    `name` (the `--method` value), built as `cls(feature_dim, cfg, num_classes)`, that either
    defines `loss(z)` over the projected views (the default `forward` projects every view with
    `self.projector`) or overrides `forward`; registered with `@register_method`.

    `forward(backbone, views, labels)` returns `(loss, features)` where `features` are the
    backbone features of the first view (detached by the caller for the online probe); labels are
    ignored by the self-supervised methods (only the supervised reference reads them).
    `after_backward()` runs between the backward pass and the optimiser step (DINO freezes its
    last layer there); `on_step_end(backbone, progress)` runs after each optimiser step (the
    teachers' EMA updates). `self.epoch` is the epoch being trained (set by the loop).

    Its own hyperparameters are the dataclass `Options` (`ssl_train.methods.options`): each field
    is a flag `--NAME.FIELD`, read here as `self.options.FIELD`.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, feature_dim: int, cfg, num_classes: int | None = None):
        super().__init__()
        self.cfg, self.epoch = cfg, 0
        given = getattr(cfg, "method_options", {}) if getattr(cfg, "method", None) == self.name else {}
        self.options = self.Options(**_options.resolve(self.name, self.Options, given))
        self.projector = mlp(feature_dim, cfg.proj_hidden, cfg.proj_dim, cfg.proj_layers)

    def embed(self, backbone: nn.Module, views: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Backbone features of every view, one pass per run of same-sized views (one BN batch,
        as SimCLR does; multi-crop's global and local crops as DINO's reference); returns the
        first view's features and every view's."""
        feats = per_view(backbone, views)
        return feats[0], feats

    def loss(self, z: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, backbone, views, labels=None):
        first, feats = self.embed(backbone, views)
        return self.loss([self.projector(f) for f in feats]), first

    def setup(self, backbone: nn.Module) -> None:
        """Called once with the backbone, before the optimiser and DDP see the parameters
        (BYOL builds its EMA target here)."""

    def begin_epoch(self, generator: torch.Generator) -> None:
        """Called at each epoch's start with the epoch's generator (SimCLR draws K negatives from it)."""

    def after_backward(self) -> None:
        pass

    def on_step_end(self, backbone: nn.Module, progress: float) -> None:
        pass


def _contract_errors(cls) -> list[str]:
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        return ["it must be a subclass of ssl_train.Method"]
    errors = []
    if not isinstance(cls.name, str) or not re.fullmatch(r"[A-Za-z_][\w-]*", cls.name):
        errors.append(f"its class attribute `name` must be a word like 'my_method', got {cls.name!r}")
    if cls.loss is Method.loss and cls.forward is Method.forward:
        errors.append("it must define loss(self, z) or forward(self, backbone, views, labels)")
    return errors + _options.contract_errors(cls.Options)


METHODS: Registry[type[Method]] = Registry("method", "register_method", _contract_errors)


register_method = METHODS.class_decorator(
    """Register a method: `@register_method` or `@register_method(replace=True)` above a `Method`
    subclass; its `name` becomes a valid `--method`, and each field of its `Options` a flag.""")
