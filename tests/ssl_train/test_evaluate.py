"""ssl_train.evaluate against independent formulations written here (Wu et al. 2018's weighted
kNN, a linear classifier's accuracy), on small inputs with known answers."""
import math

import pytest
import torch
import torch.nn as nn

from ssl_train.evaluate import extract, knn_top1, linear_eval, probe_top1


def reference_knn(train_f, train_y, test_f, test_y, k, temperature, num_classes):
    """Loop form: cosine similarity to every training feature, the k most similar vote with
    weight exp(sim / T), the heaviest class wins (ties: the lowest class index)."""
    correct = 0
    for f, y in zip(test_f.tolist(), test_y.tolist()):
        sims = []
        for g, label in zip(train_f.tolist(), train_y.tolist()):
            dot = sum(a * b for a, b in zip(f, g))
            norm = math.sqrt(sum(a * a for a in f)) * math.sqrt(sum(b * b for b in g))
            sims.append((dot / norm, label))
        sims.sort(key=lambda s: -s[0])
        votes = [0.0] * num_classes
        for sim, label in sims[:k]:
            votes[label] += math.exp(sim / temperature)
        correct += max(range(num_classes), key=lambda c: (votes[c], -c)) == y
    return correct / len(test_y)


@pytest.mark.parametrize("k, temperature", [(1, 0.1), (5, 0.1), (7, 0.5), (40, 0.07)])
def test_knn_matches_the_loop_formulation(k, temperature):
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 8, generator=g)
    train_y = torch.randint(0, 4, (40,), generator=g)
    test_y = torch.randint(0, 4, (25,), generator=g)
    train_f = centres[train_y] + 0.9 * torch.randn(40, 8, generator=g)
    test_f = 3.0 * (centres[test_y] + 0.9 * torch.randn(25, 8, generator=g))  # scale: cosine ignores it
    expected = reference_knn(train_f, train_y, test_f, test_y, k, temperature, 4)
    assert knn_top1(train_f, train_y, test_f, test_y, k=k, temperature=temperature) == pytest.approx(expected)
    # chunking the test set changes nothing
    assert knn_top1(train_f, train_y, test_f, test_y, k=k, temperature=temperature, chunk=3) == pytest.approx(expected)
    assert 0.3 < expected < 1.0  # a case where the neighbours matter, not all-or-nothing


def test_knn_weights_votes_by_similarity_and_caps_k():
    # two near neighbours of class 1 against three far ones of class 0: the weights decide
    train_f = torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0], [0.1, 1.0], [0.2, 1.0]])
    train_y = torch.tensor([1, 1, 0, 0, 0])
    test_f, test_y = torch.tensor([[1.0, 0.4]]), torch.tensor([1])
    assert knn_top1(train_f, train_y, test_f, test_y, k=5, temperature=0.1) == 1.0   # exp weights: near wins
    assert knn_top1(train_f, train_y, test_f, test_y, k=5, temperature=100.0) == 0.0  # ~equal weights: 3 beat 2
    assert knn_top1(train_f, train_y, test_f, test_y, k=500, temperature=0.1) == 1.0  # k larger than the set
    # num_classes from both label sets: a test label above every training label still counts as wrong
    assert knn_top1(train_f, train_y, test_f, torch.tensor([2]), k=1) == 0.0


def test_probe_top1_is_the_fraction_of_argmax_hits():
    probe = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        probe.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    feats = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-1.0, -1.0], [1.0, 0.0]])
    assert probe_top1(probe, feats, torch.tensor([0, 1, 2, 1])) == pytest.approx(0.75)


def test_linear_eval_learns_a_separable_problem_and_depends_on_training():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 3, generator=g)
    train_f, test_f = torch.randn(300, 6, generator=g) * 5 + 2, torch.randn(200, 6, generator=g) * 5 + 2
    train_y, test_y = (train_f @ w).argmax(1), (test_f @ w).argmax(1)
    assert linear_eval(train_f, train_y, test_f, test_y, 3, epochs=200) > 0.9
    untrained = linear_eval(train_f, train_y, test_f, test_y, 3, epochs=0)
    assert untrained < 0.7  # the near-zero initial classifier is not the answer
    assert linear_eval(train_f, train_y, test_f, test_y, 3, epochs=50, seed=3) == \
        linear_eval(train_f, train_y, test_f, test_y, 3, epochs=50, seed=3)  # same seed, same result


def test_extract_returns_eval_mode_features_in_loader_order_and_restores_mode():
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Dropout(0.9))
    backbone.train()
    batches = [(torch.arange(8.0).view(2, 1, 2, 2), torch.tensor([0, 1])),
               (torch.ones(1, 1, 2, 2), torch.tensor([2]))]
    feats, labels = extract(backbone, batches, lambda x: x * 2, torch.device("cpu"))
    assert labels.tolist() == [0, 1, 2] and backbone.training
    backbone.eval()
    with torch.no_grad():
        expected = torch.cat([backbone(x * 2) for x, _ in batches])
    torch.testing.assert_close(feats, expected)  # dropout off (eval) and to_input applied


def test_fit_linear_is_adamw_on_standardised_features_from_a_small_seeded_init():
    """The classifier after training equals an independent loop: per-dimension standardisation
    (std + 1e-6), weights N(0, 0.01^2) from the seed, zero bias, AdamW(lr 1e-2, wd 1e-5)."""
    from ssl_train.evaluate import fit_linear
    g = torch.Generator().manual_seed(2)
    # one dimension at the scale of the epsilon (1e-6): std + eps, not std - eps, keeps it finite
    feats = torch.randn(50, 4, generator=g) * torch.tensor([1.0, 10.0, 1e-6, 100.0]) + torch.tensor([5.0, -3.0, 0.0, 50.0])
    labels = torch.randint(0, 3, (50,), generator=g)
    clf, mean, std = fit_linear(feats, labels, 3, epochs=7)
    torch.testing.assert_close(mean, feats.mean(0))
    torch.testing.assert_close(std, feats.std(0) + 1e-6)
    ref = nn.Linear(4, 3)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)) * 0.01)
        ref.bias.zero_()
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=1e-5)
    x = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    for _ in range(7):
        opt.zero_grad()
        nn.functional.cross_entropy(ref(x), labels).backward()
        opt.step()
    torch.testing.assert_close(clf.weight, ref.weight)
    torch.testing.assert_close(clf.bias, ref.bias)


def test_linear_eval_fits_with_its_documented_defaults_and_scores_the_test_set(monkeypatch):
    import ssl_train.evaluate as E
    seen = []
    real = E.fit_linear
    monkeypatch.setattr(E, "fit_linear", lambda *a, **k: seen.append(a) or real(*a, **k))
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(30, 3, generator=g), torch.randint(0, 2, (30,), generator=g)
    E.linear_eval(x, y, x, y, 2, epochs=3)
    assert seen[-1][2:] == (2, 3, 1e-2, 1e-5, 0)  # classes, epochs, lr, weight decay, seed
    E.linear_eval(x, y, x, y, 2, epochs=3, lr=0.5, weight_decay=0.1, seed=9)
    assert seen[-1][2:] == (2, 3, 0.5, 0.1, 9)
