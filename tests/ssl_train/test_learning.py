"""Learning tests that can fail: a short run of each method must beat its own random init by a
stated margin, on a metric where the two are far apart.

Digits are too easy for plain kNN (a random ConvNet already scores ~0.95 at 16 px). Under heavy
Gaussian noise (std 0.75 in [0, 1] pixel units, drawn once and fixed) a random network's kNN falls to
0.36 (the global seed is set as `ssl_train.loop.train` sets it, so the init is the same whatever
ran before), while a network trained with Gaussian-noise views (the project's signature claim:
noise alone as the positive pair learns) learns to ignore it. Measured by hand (3 epochs, 16 px,
2-core CPU, 2026-11-29; floor -> trained): simclr 0.358 -> 0.783, byol 0.358 -> 0.645, vicreg
0.358 -> 0.761, barlow 0.358 -> 0.642 (4 epochs, earlier, unseeded: 0.38 -> 0.76, 0.38 -> 0.64,
0.36 -> 0.78, 0.46 -> 0.69). Measured at 4 epochs: with the loss zeroed every method ends below its floor
(0.30: weight decay alone); with the sign flipped simclr, vicreg and barlow end at 0.14-0.20
(at 3 epochs simclr: zeroed 0.358 -> 0.341, flipped 0.358 -> 0.138). MARGIN (0.15) is what a working
loss clears and those broken ones cannot. A sign-flipped BYOL still learns (0.31 -> 0.61): its
predictor's last linear layer absorbs the sign (cos -> -cos is the same problem), so that mutant
is equivalent here; `test_losses.py` catches it by the loss value and gradient.
"""
import pytest
import torch

from ssl_train.config import TrainConfig
from ssl_train.evaluate import extract, knn_top1
from augpipe.ops import NORMALIZE_STATS
from ssl_train.loop import Schedule, train_epoch
from ssl_train.parts import NORMALIZE, build


pytestmark = pytest.mark.slow  # training runs: make test-fast leaves them out

MARGIN = 0.15
EVAL_NOISE = 0.75  # std of the fixed noise added to every evaluated image, in [0, 1] pixel units


def noisy_knn(parts, device) -> float:
    """kNN top-1 (k=20) of the backbone's features of noisy train/test digits (fixed noise)."""
    g = torch.Generator().manual_seed(123)
    std = torch.tensor(NORMALIZE_STATS[NORMALIZE][1]).view(1, 3, 1, 1)  # to_input standardises

    def to_input(images):
        x = parts.to_input(images)
        return x + EVAL_NOISE * torch.randn(x.shape, generator=g) / std

    parts.backbone.eval()
    with torch.no_grad():
        train_f, train_y = extract(parts.backbone, parts.data.eval_train, to_input, device)
        test_f, test_y = extract(parts.backbone, parts.data.eval_test, to_input, device)
    return knn_top1(train_f, train_y, test_f, test_y, k=20)


@pytest.mark.parametrize("method", ["simclr", "byol", "vicreg", "barlow"])
def test_a_short_run_beats_its_random_init_under_noise(method, tmp_path):
    cfg = TrainConfig(data="digits", method=method, policy="noise[std=0.5]", image_size=16, batch_size=128,
                      epochs=3, num_workers=0, proj_hidden=128, proj_dim=64, seed=0)
    cfg.validate()
    device = torch.device("cpu")
    torch.manual_seed(cfg.seed)  # as ssl_train.loop.train does: the same init whatever ran before
    parts = build(cfg, device, 0, 1, progress=False)
    floor = noisy_knn(parts, device)
    steps = len(parts.data.train)
    schedule = Schedule(cfg.epochs * steps, steps, cfg.lr)
    for epoch in range(cfg.epochs):
        train_epoch(cfg, parts, device, epoch, schedule)
    trained = noisy_knn(parts, device)
    assert trained > floor + MARGIN, f"{method}: kNN under noise {floor:.3f} at init -> {trained:.3f} trained"
