"""Evaluation: features, weighted kNN, the online linear probe, offline linear evaluation."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.no_grad()
def extract(backbone: nn.Module, loader, to_input, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features and labels of every batch of `loader` (eval mode, no augmentation)."""
    was_training = backbone.training
    backbone.eval()
    feats, labels = [], []
    for images, y in loader:
        feats.append(backbone(to_input(images.to(device))).float())
        labels.append(y.to(device))
    backbone.train(was_training)
    return torch.cat(feats), torch.cat(labels)


@torch.no_grad()
def knn_top1(train_f, train_y, test_f, test_y, k: int = 200, temperature: float = 0.1,
             num_classes: int | None = None, chunk: int = 1024) -> float:
    """Weighted kNN (Wu et al. 2018): cosine similarity, votes weighted by exp(sim / T)."""
    num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
    train_f, test_f = F.normalize(train_f, dim=1), F.normalize(test_f, dim=1)
    k = min(k, train_f.shape[0])
    correct = 0
    for start in range(0, test_f.shape[0], chunk):
        sim = test_f[start:start + chunk] @ train_f.T
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(top.shape[0], num_classes, device=sim.device)
        votes.scatter_add_(1, train_y[idx], (top / temperature).exp())
        correct += (votes.argmax(1) == test_y[start:start + chunk]).sum().item()
    return correct / test_f.shape[0]


@torch.no_grad()
def probe_top1(probe: nn.Module, feats: torch.Tensor, labels: torch.Tensor) -> float:
    return (probe(feats).argmax(1) == labels).float().mean().item()


def fit_linear(train_f, train_y, num_classes: int, epochs: int = 100, lr: float = 1e-2,
               weight_decay: float = 1e-5, seed: int = 0) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    """A linear classifier on standardised features (AdamW, full-batch steps over precomputed
    features: seconds, not a training run). Returns it with the standardisation (mean, std)."""
    g = torch.Generator().manual_seed(seed)
    mean, std = train_f.mean(0), train_f.std(0) + 1e-6
    clf = nn.Linear(train_f.shape[1], num_classes).to(train_f.device)
    with torch.no_grad():
        clf.weight.copy_(torch.randn(clf.weight.shape, generator=g) * 0.01)
        clf.bias.zero_()
    opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=weight_decay)
    x = (train_f - mean) / std
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(clf(x), train_y).backward()
        opt.step()
    return clf, mean, std


def linear_eval(train_f, train_y, test_f, test_y, num_classes: int, epochs: int = 100,
                lr: float = 1e-2, weight_decay: float = 1e-5, seed: int = 0) -> float:
    """Offline linear evaluation: `fit_linear` on the training features, top-1 on the test ones."""
    clf, mean, std = fit_linear(train_f, train_y, num_classes, epochs, lr, weight_decay, seed)
    return probe_top1(clf, (test_f - mean) / std, test_y)
