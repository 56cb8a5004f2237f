"""What every method shares: the projector MLP and the forward over views."""
from __future__ import annotations

import re
from typing import ClassVar

import torch
import torch.nn as nn

from _augpipe_shared.registry import Registry


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


class Method(nn.Module):
    """A JE-SSL method: owns its heads and its loss, nothing of the loop.

    The contract (docs/ARCHITECTURE.md, "ssl_train: methods"): a subclass with a class attribute
    `name` (the `--method` value), built as `cls(feature_dim, cfg, num_classes)`, that either
    defines `loss(z)` over the projected views (the default `forward` projects every view with
    `self.projector`) or overrides `forward`; registered with `@register_method`.

    `forward(backbone, views, labels)` returns `(loss, features)` where `features` are the
    backbone features of the first view (detached by the caller for the online probe); labels are
    ignored by the self-supervised methods (only the supervised reference reads them).
    `on_step_end(backbone, progress)` runs after each optimizer step (BYOL's EMA update).
    """

    name: ClassVar[str] = ""

    def __init__(self, feature_dim: int, cfg, num_classes: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.projector = mlp(feature_dim, cfg.proj_hidden, cfg.proj_dim, cfg.proj_layers)

    def embed(self, backbone: nn.Module, views: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Backbone features of all views in one pass (one BN batch, as SimCLR does), split back."""
        n = views[0].shape[0]
        same = all(v.shape == views[0].shape for v in views)
        feats = backbone(torch.cat(views)) if same else torch.cat([backbone(v) for v in views])
        return feats[:n], list(feats.split([v.shape[0] for v in views]))

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
    return errors


METHODS: Registry[type[Method]] = Registry("method", "register_method", _contract_errors)


register_method = METHODS.class_decorator(
    """Class decorator: `@register_method` or `@register_method(replace=True)` above a `Method`
    subclass; its `name` becomes a valid `--method`. A name already taken raises unless replace=True.""")
