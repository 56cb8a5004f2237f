"""DINO's and MoCo v3's parts: the head, the teacher's views, the frozen last layer, the teachers'
momentum, the keys' gather (the losses by value: test_losses.py)."""
from types import SimpleNamespace

import pytest
import torch

from ssl_train.methods import METHODS
from ssl_train.methods.dino import DINOHead, global_views


def _cfg(method, **options):
    return SimpleNamespace(proj_hidden=16, proj_dim=8, proj_layers=2, ema=0.9, temperature=0.2, method=method,
                           method_options=options)


def test_dino_head_is_mlp_bottleneck_normalised_then_a_weight_normalised_last_layer():
    head = DINOHead(6, out_dim=11, hidden_dim=16, bottleneck_dim=4, layers=3)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 16), (16, 16), (16, 4)]
    assert sum(isinstance(m, torch.nn.GELU) for m in head.mlp) == 2
    magnitude = head.last_layer.parametrizations.weight.original0
    assert not magnitude.requires_grad and torch.equal(magnitude, torch.ones(11, 1))
    # every prototype (row of the last layer) has norm 1 and the bottleneck is L2-normalised: |logit| <= 1
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(11))
    out = head(torch.randn(5, 6) * 100)
    assert out.shape == (5, 11) and out.abs().max() <= 1 + 1e-6
    free = DINOHead(6, 11, 16, 4, layers=2, norm_last_layer=False, batch_norm=True)
    assert free.last_layer.parametrizations.weight.original0.requires_grad
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in free.mlp) == 1


def test_dino_teacher_sees_only_the_global_views_and_the_student_every_view():
    method = METHODS["dino"](12, _cfg("dino", out_dim=9, bottleneck_dim=4))
    student_shapes, teacher_shapes = [], []

    class Net(torch.nn.Module):
        def __init__(self, log):
            super().__init__()
            self.lin, self.log = torch.nn.Linear(3, 12), log

        def forward(self, x):
            self.log.append(tuple(x.shape))
            return self.lin(x.mean(dim=(2, 3)))
    backbone = Net(student_shapes)
    method.setup(backbone)
    method.target_backbone.log = teacher_shapes
    views = [torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)] + [torch.randn(4, 3, 4, 4) for _ in range(3)]
    assert global_views(views) == 2 and global_views(views[:1]) == 1 and global_views(views[1:2] * 3) == 3
    loss, first = method(backbone, views)
    assert student_shapes == [(8, 3, 8, 8), (12, 3, 4, 4)] and teacher_shapes == [(8, 3, 8, 8)]
    assert first.shape == (4, 12) and loss.ndim == 0
    loss.backward()
    assert all(p.grad is None for p in method.target_head.parameters())
    assert backbone.lin.weight.grad.abs().sum() > 0


def test_dino_freezes_its_last_layer_for_the_first_epochs_only():
    method = METHODS["dino"](5, _cfg("dino", out_dim=7, bottleneck_dim=3, freeze_last_layer=1, norm_last_layer=False))
    backbone = torch.nn.Linear(5, 5)
    method.setup(backbone)
    for epoch, frozen in ((0, True), (1, False)):
        method.epoch = epoch
        loss, _ = method(backbone, [torch.randn(6, 5), torch.randn(6, 5)])
        loss.backward()
        method.after_backward()
        last = list(method.head.last_layer.parameters())
        assert all((p.grad is None) == frozen for p in last), epoch
        assert method.head.mlp[0].weight.grad is not None  # the rest of the head always learns
        method.zero_grad()


def test_dino_centring_off_leaves_the_centre_and_the_targets_uncentred():
    method = METHODS["dino"](5, _cfg("dino", out_dim=7, bottleneck_dim=3, centering=False))
    backbone = torch.nn.Linear(5, 5)
    method.setup(backbone)
    method(backbone, [torch.randn(6, 5), torch.randn(6, 5)])
    assert torch.equal(method.center, torch.zeros(1, 7))
    on = METHODS["dino"](5, _cfg("dino", out_dim=7, bottleneck_dim=3))
    on.setup(backbone)
    on(backbone, [torch.randn(6, 5), torch.randn(6, 5)])
    assert on.center.abs().sum() > 0


@pytest.mark.parametrize("name, online, teacher", [("dino", "head", "target_head"),
                                                   ("mocov3", "projector", "target_projector"),
                                                   ("byol", "projector", "target_projector")])
def test_teachers_follow_the_student_with_the_cosine_momentum(name, online, teacher):
    method = METHODS[name](5, _cfg(name, **({"out_dim": 7, "bottleneck_dim": 3} if name == "dino" else {})))
    backbone = torch.nn.Linear(5, 5)
    method.setup(backbone)
    before = [p.detach().clone() for p in method.target_backbone.parameters()]
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(1.0)
    method.on_step_end(backbone, progress=0.0)  # momentum = ema (0.9) at the start
    for old, new, p in zip(before, method.target_backbone.parameters(), backbone.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * p)
    frozen = [p.detach().clone() for p in getattr(method, teacher).parameters()]
    with torch.no_grad():
        for p in getattr(method, online).parameters():
            p.add_(1.0)
    method.on_step_end(backbone, progress=1.0)  # momentum 1 at the end: the teacher stays
    assert all(torch.equal(a, b) for a, b in zip(frozen, getattr(method, teacher).parameters()))
    assert all(not p.requires_grad for p in method.target_backbone.parameters())


def test_mocov3_queries_come_from_the_predictor_and_keys_from_the_momentum_encoder():
    method = METHODS["mocov3"](5, _cfg("mocov3"))
    backbone = torch.nn.Linear(5, 5)
    method.setup(backbone)
    assert isinstance(method.projector[-1], torch.nn.BatchNorm1d) and not method.projector[-1].affine
    with torch.no_grad():
        for p in method.target_backbone.parameters():
            p.mul_(-1)  # keys now differ from what the online encoder would give
    views = [torch.randn(6, 5), torch.randn(6, 5)]
    loss, first = method(backbone, views)
    from ssl_train.methods.mocov3 import mocov3_loss
    with torch.no_grad():
        q = [method.predictor(method.projector(backbone(v))) for v in views]
        k = [method.target_projector(method.target_backbone(v)) for v in views]
    torch.testing.assert_close(loss.detach(), mocov3_loss(q, k, 0.2))
    torch.testing.assert_close(first, backbone(views[0]))
