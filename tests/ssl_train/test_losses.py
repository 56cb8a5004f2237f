"""Every loss against an independent formulation written here from the papers' pseudo-code (and
the official code where the two differ), value and gradient, plus properties that pin each term."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from ssl_train.methods.barlow import barlow_loss
from ssl_train.methods.byol import byol_loss
from ssl_train.methods.simclr import info_nce
from ssl_train.methods.vicreg import vicreg_loss


def _inputs(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes]


def _check(ours_fn, ref_fn, inputs):
    """Same value and same gradient w.r.t. every input."""
    ours, ref = ours_fn(*inputs), ref_fn(*inputs)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    g_ours = torch.autograd.grad(ours, inputs)
    g_ref = torch.autograd.grad(ref_fn(*inputs), inputs)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)
    return ours


# --- SimCLR (Chen et al. 2020, algorithm 1), written anchor by anchor ---------------------------
def ref_simclr(views, t):
    v, n = len(views), views[0].shape[0]
    z = [F.normalize(x, dim=1) for x in views]
    terms = []
    for i, k in itertools.product(range(v), range(n)):           # anchor: view i of image k
        anchor = z[i][k]
        negatives = torch.stack([z[j][m] for j in range(v) for m in range(n) if m != k])
        for j in range(v):
            if j == i:
                continue
            pos = anchor @ z[j][k] / t
            neg = negatives @ anchor / t
            terms.append(-(pos - torch.logsumexp(torch.cat([pos[None], neg]), 0)))
    return torch.stack(terms).mean()


@pytest.mark.parametrize("views", [2, 3])
def test_simclr_all_negatives_matches_the_definition(views):
    inputs = _inputs(*[(6, 5)] * views)
    _check(lambda *z: info_nce(list(z), 0.3, None), lambda *z: ref_simclr(list(z), 0.3), inputs)


def test_simclr_k_negatives_is_the_definition_over_the_drawn_ones():
    """K drawn negatives: recompute each anchor's loss from the set the loss used (the same
    generator state), by the definition."""
    a, b = _inputs((8, 4), (8, 4))
    for k in (1, 5):
        loss = info_nce([a, b], 0.5, k, torch.Generator().manual_seed(9))
        z = F.normalize(torch.cat([a, b]), dim=1).detach()
        sim = z @ z.T / 0.5
        keys = torch.rand(sim.shape, generator=torch.Generator().manual_seed(9))
        image = torch.arange(8).repeat(2)
        keys[image[:, None] == image[None, :]] = -1.0
        chosen = keys.topk(k, dim=1).indices
        pos = sim[torch.arange(16), (torch.arange(16) + 8) % 16]
        ref = -(pos - torch.logsumexp(torch.cat([pos[:, None], sim.gather(1, chosen)], 1), 1)).mean()
        torch.testing.assert_close(loss.detach(), ref, rtol=1e-10, atol=1e-12)


# --- VICReg (Bardes et al. 2022, algorithm 1; variance term averaged as in the official code) --
def ref_vicreg(za, zb, lam=25.0, mu=25.0, nu=1.0):
    n, d = za.shape
    sim = ((za - zb) ** 2).mean()
    std = [torch.sqrt(z.var(dim=0) + 1e-4) for z in (za, zb)]
    var = sum(torch.mean(torch.relu(1 - s)) for s in std) / 2
    cov = 0
    for z in (za, zb):
        zc = z - z.mean(0)
        c = zc.T @ zc / (n - 1)
        cov = cov + (c.pow(2).sum() - c.diagonal().pow(2).sum()) / d
    return lam * sim + mu * var + nu * cov


def test_vicreg_matches_the_paper():
    _check(vicreg_loss, ref_vicreg, _inputs((12, 6), (12, 6)))


def test_vicreg_covariance_term_sees_redundant_dimensions():
    """Covariance alone: zero for decorrelated dimensions, positive when two are copies."""
    g = torch.Generator().manual_seed(1)
    white = torch.linalg.qr(torch.randn(64, 8, generator=g, dtype=torch.float64))[0] * 8  # orthogonal columns
    white = white - white.mean(0)
    white = torch.linalg.qr(white)[0] * 8
    cov_only = lambda z: vicreg_loss(z, z, sim_w=0, var_w=0, cov_w=1)
    assert cov_only(white - white.mean(0)) < 1e-3
    redundant = white.clone()
    redundant[:, 1] = redundant[:, 0]
    assert cov_only(redundant) > 0.05
    var_only = lambda z: vicreg_loss(z, z, sim_w=0, var_w=1, cov_w=0)
    assert var_only(white * 10) == 0 and var_only(white * 0.01) > 0.9  # the hinge at std 1


# --- BYOL (Grill et al. 2020, eq. 2): L + L~, each 2 - 2 cos -----------------------------------
def ref_byol(p1, p2, z1, z2):
    def term(p, z):
        return ((F.normalize(p, dim=1) - F.normalize(z, dim=1)) ** 2).sum(1).mean()  # = 2 - 2 cos
    return term(p1, z2) + term(p2, z1)


def test_byol_is_the_papers_symmetric_sum():
    p1, p2, z1, z2 = _inputs(*[(10, 7)] * 4)
    _check(lambda a, b, c, d: byol_loss([a, b], [c, d]), ref_byol, [p1, p2, z1, z2])


def test_byol_is_minimal_when_online_predicts_the_target():
    (z1, z2) = _inputs((10, 7), (10, 7))
    assert byol_loss([z2 * 3.0, z1 * 0.5], [z1, z2]).abs() < 1e-12  # scale does not matter
    assert byol_loss([-z2, -z1], [z1, z2]).item() == pytest.approx(8.0)  # opposite: 2 x (2 - 2 x -1)


# --- Barlow Twins (Zbontar et al. 2021, algorithm 1, with the official BatchNorm standardisation)
def ref_barlow(za, zb, lambd=5e-3):
    n, d = za.shape
    bn = lambda z: F.batch_norm(z, None, None, training=True, eps=1e-5)  # BatchNorm1d(affine=False)
    c = bn(za).T @ bn(zb) / n
    c_diff = (c - torch.eye(d, dtype=c.dtype)) ** 2
    off = ~torch.eye(d, dtype=torch.bool)
    return c_diff[~off].sum() + lambd * c_diff[off].sum()


def test_barlow_matches_the_official_formulation():
    _check(barlow_loss, ref_barlow, _inputs((16, 5), (16, 5)))


def test_barlow_off_diagonal_term_counts():
    """Same per-dimension statistics, different cross-correlations: only the off-diagonal term
    can tell them apart."""
    a, b = (t.detach() for t in _inputs((32, 4), (32, 4), seed=3))
    shuffled = b[:, [1, 0, 2, 3]]          # the same columns, other pairs correlated
    diag_only = barlow_loss(a, b, 0.0), barlow_loss(a, shuffled, 0.0)
    full = barlow_loss(a, b, 1.0), barlow_loss(a, shuffled, 1.0)
    assert full[0] - diag_only[0] > 0.05 and full[1] - diag_only[1] > 0.05
    assert barlow_loss(a, a, 0.0) < 1e-6  # identical branches: the diagonal is exactly 1


@pytest.mark.parametrize("name, pair_loss", [("vicreg", lambda a, b: ref_vicreg(a, b)),
                                             ("barlow", lambda a, b: ref_barlow(a, b, 5e-3))])
def test_multi_view_losses_average_every_unordered_pair(name, pair_loss):
    """With V views, the symmetric losses are the mean over the V(V-1)/2 pairs (i < j)."""
    from types import SimpleNamespace

    from ssl_train.methods import METHODS
    cfg = SimpleNamespace(proj_hidden=8, proj_dim=6, proj_layers=2, barlow_lambda=5e-3)
    method = METHODS[name](6, cfg)
    z = _inputs((10, 6), (10, 6), (10, 6), seed=3)
    expected = sum(pair_loss(z[i], z[j]) for i, j in itertools.combinations(range(3), 2)) / 3
    torch.testing.assert_close(method.loss(z), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(method.loss(z[:2]), pair_loss(z[0], z[1]), rtol=1e-10, atol=1e-12)


def test_supervised_reference_is_mean_cross_entropy_over_views():
    from types import SimpleNamespace

    from ssl_train.methods import METHODS
    cfg = SimpleNamespace(proj_hidden=8, proj_dim=6, proj_layers=2)
    with pytest.raises(ValueError, match=r"^--method supervised needs labelled training data \(its number of classes\)$"):
        METHODS["supervised"](5, cfg, None)
    method = METHODS["supervised"](5, cfg, 3)
    assert isinstance(method.projector, torch.nn.Linear) and method.projector.out_features == 3
    backbone = torch.nn.Flatten()
    views = _inputs((4, 5), (4, 5), seed=4)
    labels = torch.tensor([0, 2, 1, 2])
    loss, first = method(backbone, [v.float() for v in views], labels)
    head = method.projector
    expected = sum(F.cross_entropy(head(v.float()), labels) for v in views) / 2
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(first, views[0].float())
    with pytest.raises(ValueError, match=r"^--method supervised needs labels$"):
        method(backbone, [v.float() for v in views])


def test_byol_with_three_views_sums_ordered_pairs_over_v_minus_1():
    p = _inputs((6, 4), (6, 4), (6, 4), seed=5)
    z = _inputs((6, 4), (6, 4), (6, 4), seed=6)
    cos = lambda a, b: (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    expected = sum((2 - 2 * cos(p[i], z[j])).mean() for i in range(3) for j in range(3) if i != j) / 2
    torch.testing.assert_close(byol_loss(p, z), expected, rtol=1e-10, atol=1e-12)


def test_byol_target_is_a_frozen_deep_copy_and_the_predictor_has_two_layers():
    from types import SimpleNamespace

    from ssl_train.methods import METHODS
    cfg = SimpleNamespace(proj_hidden=8, proj_dim=4, proj_layers=2, ema=0.99)
    method = METHODS["byol"](5, cfg)
    backbone = torch.nn.Linear(3, 5)
    method.setup(backbone)
    linears = [m for m in method.predictor if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4, 8), (8, 4)]
    for online, target in ((backbone, method.target_backbone), (method.projector, method.target_projector)):
        assert all(not p.requires_grad for p in target.parameters())
        assert all(p.requires_grad for p in online.parameters())
        for p, tp in zip(online.parameters(), target.parameters()):
            assert torch.equal(p, tp) and p.data_ptr() != tp.data_ptr()  # a copy, not shared storage
    first_target = method.target_backbone
    method.setup(torch.nn.Linear(3, 5))
    assert method.target_backbone is first_target  # set up once (a resume must not reset the target)


@pytest.mark.parametrize("negatives", [None, 2])
def test_simclr_builds_its_index_tensors_on_the_embeddings_device(negatives):
    """The meta device stands in for CUDA: no helper tensor may be made on the CPU."""
    z = [torch.empty(4, 3, device="meta"), torch.empty(4, 3, device="meta")]
    assert info_nce(z, 0.2, negatives).device.type == "meta"


# --- DINO (Caron et al. 2021, algorithm 1 and the reference's DINOLoss), term by term -----------
def ref_dino(student, teacher, center, ts, tt):
    """H(P_t(x_i), P_s(x_v)) for every global view i and every other view v, averaged; P_t is the
    centred, sharpened teacher softmax: exp((t - c) / tt) / sum exp(...)."""
    terms = []
    for i, t in enumerate(teacher):
        p_t = torch.exp((t - center) / tt) / torch.exp((t - center) / tt).sum(dim=1, keepdim=True)
        for v, s in enumerate(student):
            if v == i:
                continue
            log_p_s = s / ts - torch.log(torch.exp(s / ts).sum(dim=1, keepdim=True))
            terms.append(torch.stack([-(p_t[n] * log_p_s[n]).sum() for n in range(s.shape[0])]).mean())
    return sum(terms) / len(terms)


def test_dino_loss_matches_the_paper_with_multi_crop():
    from ssl_train.methods.dino import dino_loss
    s1, s2, l1, l2, l3, t1, t2, c = _inputs((5, 7), (5, 7), (5, 7), (5, 7), (5, 7), (5, 7), (5, 7), (1, 7), seed=8)
    ours = _check(lambda *x: dino_loss(list(x[:5]), list(x[5:7]), x[7], 0.1, 0.04),
                  lambda *x: ref_dino(list(x[:5]), list(x[5:7]), x[7], 0.1, 0.04), [s1, s2, l1, l2, l3, t1, t2, c])
    assert ours.dtype == torch.float64  # float64 stays float64 (bf16 becomes float32)
    # 2 global + 3 local views: 2 x 4 = 8 terms; two views: the two cross terms only
    two = dino_loss([s1, s2], [t1, t2], c, 0.1, 0.04)
    torch.testing.assert_close(two, ref_dino([s1, s2], [t1, t2], c, 0.1, 0.04), rtol=1e-10, atol=1e-12)


def test_dino_centre_and_temperatures_change_the_targets():
    from ssl_train.methods.dino import dino_loss, teacher_temperature
    s1, s2, t1, t2 = _inputs((6, 5), (6, 5), (6, 5), (6, 5), seed=9)
    zero, shift = torch.zeros(1, 5, dtype=torch.float64), torch.tensor([[3.0, 0, 0, 0, 0]], dtype=torch.float64)
    assert not torch.allclose(dino_loss([s1, s2], [t1, t2], zero, 0.1, 0.04), dino_loss([s1, s2], [t1, t2], shift, 0.1, 0.04))
    # a constant centre on every dimension changes nothing (softmax is shift-invariant)
    torch.testing.assert_close(dino_loss([s1, s2], [t1, t2], zero + 2.0, 0.1, 0.04), dino_loss([s1, s2], [t1, t2], zero, 0.1, 0.04))
    # the reference schedule: np.linspace(warmup, temp, warmup_epochs), then temp
    import numpy as np
    expected = np.concatenate([np.linspace(0.02, 0.07, 4), np.full(3, 0.07)])
    ours = [teacher_temperature(e, 0.02, 0.07, 4) for e in range(7)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    assert teacher_temperature(0, 0.03, 0.07, 1) == 0.03 and teacher_temperature(0, 0.03, 0.07, 0) == 0.07


def test_dino_centre_is_an_ema_of_the_teachers_batch_mean():
    from types import SimpleNamespace

    from ssl_train.methods.dino import DINO
    cfg = SimpleNamespace(proj_hidden=8, proj_dim=4, proj_layers=2, ema=0.99, method="dino",
                          method_options={"out_dim": 5, "bottleneck_dim": 3, "center_momentum": 0.8})
    method = DINO(4, cfg)
    t1, t2 = _inputs((6, 5), (6, 5), seed=10)
    method.center.fill_(1.0)
    method.update_center([t1.detach().float(), t2.detach().float()])
    expected = 0.8 * torch.ones(1, 5) + 0.2 * torch.cat([t1, t2]).detach().float().mean(dim=0, keepdim=True)
    torch.testing.assert_close(method.center, expected)


# --- MoCo v3 (Chen et al. 2021, algorithm 1), query by query ------------------------------------
def ref_moco(q1, q2, k1, k2, t):
    def ctr(q, k):
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        losses = [-torch.log(torch.exp(q[n] @ k[n] / t) / torch.exp(q[n] @ k.T / t).sum()) for n in range(q.shape[0])]
        return torch.stack(losses).mean() * 2 * t
    return ctr(q1, k2) + ctr(q2, k1)


def test_mocov3_loss_is_the_papers_symmetric_infonce():
    from ssl_train.methods.mocov3 import mocov3_loss
    q1, q2, k1, k2 = _inputs((6, 4), (6, 4), (6, 4), (6, 4), seed=11)
    _check(lambda a, b, c, d: mocov3_loss([a, b], [c, d], 0.2), lambda a, b, c, d: ref_moco(a, b, c, d, 0.2),
           [q1, q2, k1, k2])


def test_mocov3_positive_is_this_ranks_row_among_the_gathered_keys():
    """Rank r of R: its keys sit at rows r*N..(r+1)*N-1 of the gathered keys (offset)."""
    from ssl_train.methods.mocov3 import moco_contrastive
    q, other, mine = _inputs((4, 3), (4, 3), (4, 3), seed=12)
    gathered = torch.cat([other, mine])  # this process is rank 1 of 2
    ours = moco_contrastive(q, gathered, 0.5, offset=4)
    qn, kn = F.normalize(q, dim=1), F.normalize(gathered, dim=1)
    expected = torch.stack([-torch.log_softmax(qn[n] @ kn.T / 0.5, dim=0)[4 + n] for n in range(4)]).mean() * 2 * 0.5
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(ours, moco_contrastive(q, gathered, 0.5, offset=0))
