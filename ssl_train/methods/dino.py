"""DINO (Caron et al. 2021): self-distillation with no labels, after facebookresearch/dino.

A student (backbone + `DINOHead`) and a teacher (a momentum copy of both, `--ema` cosine-raised
to 1 as BYOL's). With multi-crop (`--views 2x32+4x16`), the teacher sees only the global views
(the leading views of the first view's size) and the student sees every view. The loss is the
cross-entropy between the teacher's centred, sharpened softmax and the student's, over every pair
of different views (global view i for the teacher, any other view for the student), averaged.
The centre is an EMA of the teacher's batch mean, summed over ranks under DDP. The teacher's
temperature warms up linearly over the first epochs, as the reference's schedule.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssl_train import dist
from ssl_train.methods.base import Method, cosine_momentum, ema_update, fp32, per_view, register_method
from ssl_train.methods.options import fraction, non_negative, option, positive


def dino_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor,
              student_temp: float, teacher_temp: float) -> torch.Tensor:
    """Mean over pairs (i, v), i a global view, v any other view, of the batch mean of
    -sum softmax((teacher_i - center) / teacher_temp) * log_softmax(student_v / student_temp).

    `student` holds every view's head outputs, the global views first; `teacher` the global views'.
    """
    targets = [F.softmax((fp32(t) - center) / teacher_temp, dim=-1) for t in teacher]
    log_probs = [F.log_softmax(fp32(s) / student_temp, dim=-1) for s in student]
    terms = [-(q * log_probs[v]).sum(dim=-1).mean()
             for i, q in enumerate(targets) for v in range(len(log_probs)) if v != i]
    return torch.stack(terms).mean()


def teacher_temperature(epoch: int, warmup_temp: float, temp: float, warmup_epochs: int) -> float:
    """The reference's schedule: linspace(warmup_temp, temp, warmup_epochs) for the first epochs,
    then `temp`."""
    if epoch >= warmup_epochs:
        return temp
    if warmup_epochs == 1:
        return warmup_temp
    return warmup_temp + (temp - warmup_temp) * epoch / (warmup_epochs - 1)


class DINOHead(nn.Module):
    """MLP (Linear-GELU blocks) to a bottleneck, L2-normalised, then a weight-normalised linear
    layer to `out_dim` prototypes whose norm is fixed at 1 when `norm_last_layer`."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, bottleneck_dim: int, layers: int = 3,
                 norm_last_layer: bool = True, batch_norm: bool = False):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (layers - 1) + [bottleneck_dim]
        mods = []
        for i in range(layers):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < layers - 1:
                mods += [nn.BatchNorm1d(dims[i + 1])] if batch_norm else []
                mods.append(nn.GELU())
        self.mlp = nn.Sequential(*mods)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1.0)
        magnitude.requires_grad_(not norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


def global_views(views: list[torch.Tensor]) -> int:
    """How many leading views have the first view's size (multi-crop's global crops)."""
    count = 1
    while count < len(views) and views[count].shape[-2:] == views[0].shape[-2:]:
        count += 1
    return count


@register_method
class DINO(Method):
    name = "dino"

    @dataclass
    class Options:
        out_dim: int = option(4096, "prototypes: the head's output width (the reference's 65536 is for ImageNet)",
                              check=positive)
        bottleneck_dim: int = option(256, "the head's bottleneck width (its hidden width is --proj-hidden)",
                                     check=positive)
        head_layers: int = option(3, "linear layers of the head's MLP", check=positive)
        norm_last_layer: bool = option(True, "fix the last layer's weight norm at 1")
        head_bn: bool = option(False, "BatchNorm after the head's hidden layers (the reference's use_bn_in_head): "
                                     "helps a ConvNet, whose pooled features share a large mean, learn faster")
        student_temp: float = option(0.1, "student softmax temperature", check=positive)
        teacher_temp: float = option(0.04, "teacher softmax temperature after the warm-up", check=positive)
        warmup_teacher_temp: float = option(0.04, "teacher temperature at the first epoch", check=positive)
        warmup_teacher_temp_epochs: int = option(0, "epochs of linear teacher-temperature warm-up",
                                                 check=non_negative)
        center_momentum: float = option(0.9, "EMA momentum of the teacher's centre", check=fraction)
        centering: bool = option(True, "subtract the centre from the teacher's outputs (off: the run collapses)")
        freeze_last_layer: int = option(1, "epochs during which the last layer is not updated", check=non_negative)

    def __init__(self, feature_dim, cfg, num_classes=None):
        super().__init__(feature_dim, cfg, num_classes)
        o = self.options
        del self.projector  # the head replaces the common projector
        self.head = DINOHead(feature_dim, o.out_dim, cfg.proj_hidden, o.bottleneck_dim, o.head_layers,
                             o.norm_last_layer, o.head_bn)
        self.target_backbone = None
        self.target_head = copy.deepcopy(self.head).requires_grad_(False)
        self.register_buffer("center", torch.zeros(1, o.out_dim))

    def setup(self, backbone):
        if self.target_backbone is None:
            self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)

    def teacher_temp(self) -> float:
        o = self.options
        return teacher_temperature(self.epoch, o.warmup_teacher_temp, o.teacher_temp, o.warmup_teacher_temp_epochs)

    def forward(self, backbone, views, labels=None):
        first, feats = self.embed(backbone, views)
        student = self.head(torch.cat(feats)).split([f.shape[0] for f in feats])
        with torch.no_grad():
            teacher = [self.target_head(f) for f in per_view(self.target_backbone, views[:global_views(views)])]
        center = self.center if self.options.centering else torch.zeros_like(self.center)
        loss = dino_loss(list(student), teacher, center, self.options.student_temp, self.teacher_temp())
        if self.options.centering:
            self.update_center(teacher)
        return loss, first

    @torch.no_grad()
    def update_center(self, teacher: list[torch.Tensor]) -> None:
        rows = fp32(torch.cat(teacher))
        batch_center = dist.all_reduce_sum(rows.sum(dim=0, keepdim=True)) / (rows.shape[0] * dist.world_size())
        m = self.options.center_momentum
        self.center.mul_(m).add_(batch_center, alpha=1 - m)

    def after_backward(self):
        if self.epoch < self.options.freeze_last_layer:  # the reference's cancel_gradients_last_layer
            for p in self.head.last_layer.parameters():
                p.grad = None

    def on_step_end(self, backbone, progress):
        ema_update([(backbone, self.target_backbone), (self.head, self.target_head)],
                   cosine_momentum(self.cfg.ema, progress))
