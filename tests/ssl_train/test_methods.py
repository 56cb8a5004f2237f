"""Methods: losses against plain references, the negatives control, EMA, optimisers."""

import pytest
import torch
import torch.nn.functional as F

from ssl_train.config import TrainConfig
from ssl_train.methods import METHODS, build_method, info_nce
from ssl_train.optim import LARS, lr_at, scaled_lr


def reference_nt_xent(a, b, t):
    """Textbook NT-Xent: cross-entropy over the 2N x 2N similarity matrix without the diagonal."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    n = a.shape[0]
    sim = z @ z.T / t
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, targets)


def test_info_nce_all_negatives_is_nt_xent(gen):
    a, b = torch.randn(16, 8, generator=gen), torch.randn(16, 8, generator=gen)
    torch.testing.assert_close(info_nce([a, b], 0.2, None), reference_nt_xent(a, b, 0.2))


def test_info_nce_with_all_candidates_as_k_equals_all(gen):
    a, b = torch.randn(10, 8, generator=gen), torch.randn(10, 8, generator=gen)
    torch.testing.assert_close(info_nce([a, b], 0.5, 18, torch.Generator().manual_seed(0)),
                               info_nce([a, b], 0.5, None))


def test_single_negative_uses_exactly_one_other_image(gen):
    n, t = 6, 0.5
    a, b = torch.randn(n, 4, generator=gen), torch.randn(n, 4, generator=gen)
    loss = info_nce([a, b], t, 1, torch.Generator().manual_seed(3))
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / t
    pos = torch.cat([sim[torch.arange(n), torch.arange(n) + n], sim[torch.arange(n) + n, torch.arange(n)]])
    # each anchor's loss is log(1 + e^(s_neg - s_pos)) for its one negative: bounded by the extremes
    other = sim.clone()
    image = torch.arange(n).repeat(2)
    other[image[:, None] == image[None, :]] = float("nan")
    lo = F.softplus(torch.nan_to_num(other, nan=float("inf")).min(1).values - pos).mean()
    hi = F.softplus(torch.nan_to_num(other, nan=float("-inf")).max(1).values - pos).mean()
    assert lo <= loss <= hi
    assert not torch.isclose(loss, info_nce([a, b], t, None))
    # drawn per anchor: a different draw gives a different loss
    assert not torch.isclose(loss, info_nce([a, b], t, 1, torch.Generator().manual_seed(4)))


def test_too_many_negatives_is_an_error(gen):
    a = torch.randn(4, 3, generator=gen)
    with pytest.raises(ValueError, match="negatives=7 but only 6 candidates"):
        info_nce([a, a], 0.1, 7)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_a_step(name, gen):
    cfg = TrainConfig(method=name, proj_hidden=32, proj_dim=16)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 24))
    method = build_method(name, 24, cfg, num_classes=3)
    method.setup(backbone)
    views = [torch.rand(12, 3, 8, 8, generator=gen) for _ in range(2)]
    loss, feats = method(backbone, views, labels=torch.arange(12) % 3)
    assert loss.ndim == 0 and torch.isfinite(loss) and feats.shape == (12, 24)
    loss.backward()
    assert backbone[1].weight.grad.abs().sum() > 0


def test_byol_target_follows_online_by_ema(gen):
    cfg = TrainConfig(method="byol", proj_hidden=8, proj_dim=4, ema=0.9)
    backbone = torch.nn.Linear(5, 6)
    method = build_method("byol", 6, cfg)
    method.setup(backbone)
    target = method.target_backbone
    before = target.weight.clone()
    with torch.no_grad():
        backbone.weight.add_(1.0)
    method.on_step_end(backbone, progress=0.0)  # tau = ema at the start
    torch.testing.assert_close(target.weight, 0.9 * before + 0.1 * backbone.weight)
    method.on_step_end(backbone, progress=1.0)  # tau = 1 at the end: frozen
    after = target.weight.clone()
    method.on_step_end(backbone, progress=1.0)
    assert torch.equal(after, target.weight)


def test_lr_rules_and_schedule():
    assert scaled_lr(0.3, 512, "linear") == pytest.approx(0.6)
    assert scaled_lr(0.3, 1024, "sqrt") == pytest.approx(0.6)
    assert scaled_lr(0.3, 64, "none") == 0.3
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_lars_scales_step_by_trust_ratio():
    w = torch.nn.Parameter(torch.full((2, 2), 2.0))
    b = torch.nn.Parameter(torch.ones(2))
    opt = LARS([w, b], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.1)
    w.grad, b.grad = torch.full((2, 2), 4.0), torch.full((2,), 0.5)
    opt.step()
    # trust = eta * |w| / |g| = 0.1 * 4 / 8: the 2-D weight moves by 0.05 * 4; the bias by its raw grad
    torch.testing.assert_close(w.detach(), torch.full((2, 2), 2.0 - 0.05 * 4))
    torch.testing.assert_close(b.detach(), torch.full((2,), 0.5))


@pytest.mark.parametrize("negatives, k", [("all", None), ("1", 1), ("3", 3)])
def test_simclr_method_passes_its_negatives_and_the_epoch_generator(negatives, k, gen, monkeypatch):
    from types import SimpleNamespace

    from ssl_train.methods import simclr
    seen = []
    monkeypatch.setattr(simclr, "info_nce", lambda z, t, negs, g: seen.append((t, negs, g)) or torch.zeros(()))
    cfg = SimpleNamespace(proj_hidden=8, proj_dim=4, proj_layers=2, temperature=0.3, negatives=negatives)
    method = simclr.SimCLR(6, cfg)
    epoch_generator = torch.Generator().manual_seed(1)
    method.begin_epoch(epoch_generator)
    method.loss([torch.zeros(4, 4), torch.zeros(4, 4)])
    assert seen == [(0.3, k, epoch_generator)]


def test_projector_mlp_layout():
    from ssl_train.methods.base import mlp
    net = mlp(4, 8, 3, layers=3)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert [(m.in_features, m.out_features, m.bias is not None) for m in net if isinstance(m, torch.nn.Linear)] == \
        [(4, 8, False), (8, 8, False), (8, 3, True)]  # no bias before a BatchNorm
    assert all(m.inplace for m in net if isinstance(m, torch.nn.ReLU))
    assert [m.num_features for m in net if isinstance(m, torch.nn.BatchNorm1d)] == [8, 8]
    last_bn = mlp(4, 8, 3, layers=2, last_bn=True)
    assert last_bn[-2].bias is None and isinstance(last_bn[-1], torch.nn.BatchNorm1d)
    assert last_bn[-1].num_features == 3 and not last_bn[-1].affine


def test_method_projector_depth_follows_the_config():
    from types import SimpleNamespace

    from ssl_train.methods import build_method
    cfg = SimpleNamespace(proj_hidden=8, proj_dim=4, proj_layers=3, temperature=0.2, negatives="all",
                          barlow_lambda=5e-3)
    linears = [m for m in build_method("simclr", 6, cfg).projector if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 8), (8, 8), (8, 4)]
    with pytest.raises(ValueError, match="unknown method 'moco'; valid: simclr, vicreg, byol, barlow, dino, mocov3, supervised"):
        build_method("moco", 6, cfg)


def test_embed_runs_each_run_of_same_size_views_as_one_batch():
    from types import SimpleNamespace

    from ssl_train.methods.base import Method
    calls = []

    def backbone(x):
        calls.append(tuple(x.shape))
        return x.flatten(1)[:, :2] * 1.0
    method = Method(2, SimpleNamespace(proj_hidden=4, proj_dim=2, proj_layers=2))
    a, b = torch.arange(24.0).view(3, 2, 2, 2), -torch.arange(24.0).view(3, 2, 2, 2)
    first, feats = method.embed(backbone, [a, b])
    assert calls == [(6, 2, 2, 2)]  # one pass: one BatchNorm batch over both views, as SimCLR
    assert torch.equal(first, a.flatten(1)[:, :2]) and [f.shape[0] for f in feats] == [3, 3]
    assert torch.equal(feats[1], b.flatten(1)[:, :2])
    calls.clear()
    small = torch.ones(3, 2, 1, 1)
    first, feats = method.embed(backbone, [a, small, 2 * small])   # multi-crop: the local crops in one pass
    assert calls == [(3, 2, 2, 2), (6, 2, 1, 1)] and [f.shape[0] for f in feats] == [3, 3, 3]
    assert torch.equal(first, a.flatten(1)[:, :2]) and torch.equal(feats[2], 2 * small.flatten(1)[:, :2])
    calls.clear()
    method.embed(backbone, [a, small, b])   # only consecutive views share a pass: the order is kept
    assert calls == [(3, 2, 2, 2), (3, 2, 1, 1), (3, 2, 2, 2)]


def test_barlow_method_uses_the_configured_lambda():
    from types import SimpleNamespace

    from ssl_train.methods import METHODS
    from ssl_train.methods.barlow import barlow_loss
    g = torch.Generator().manual_seed(0)
    z = [torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)]
    cfg = SimpleNamespace(proj_hidden=4, proj_dim=4, proj_layers=2, barlow_lambda=0.5)
    torch.testing.assert_close(METHODS["barlow"](4, cfg).loss(z), barlow_loss(z[0], z[1], 0.5))
    assert not torch.allclose(barlow_loss(z[0], z[1], 0.5), barlow_loss(z[0], z[1]))
