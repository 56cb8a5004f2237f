"""Ten everyday torchvision pipelines convert without extra arguments and give views distributed
like torchvision's own on real photographs: the per-image mean and spread of many draws, compared
by a two-sample Kolmogorov-Smirnov statistic."""
import warnings

import pytest
import torch
from torchvision.transforms import v2

from augpipe import from_torchvision

TO_FLOAT = v2.ToDtype(torch.float32, scale=True)
PIPELINES = {
    "simclr": v2.Compose([v2.RandomResizedCrop(32), v2.RandomHorizontalFlip(),
                          v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(0.2),
                          v2.RandomApply([v2.GaussianBlur(3, (0.1, 2.0))], p=0.5), TO_FLOAT]),
    "dino-local": v2.Compose([v2.RandomResizedCrop(24, scale=(0.05, 0.4)), v2.RandomHorizontalFlip(),
                              v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), v2.RandomGrayscale(0.2),
                              v2.RandomApply([v2.GaussianBlur(3, (0.1, 2.0))], p=0.5), TO_FLOAT]),
    "cifar": v2.Compose([v2.RandomCrop(96, padding=12), v2.RandomHorizontalFlip(), TO_FLOAT,
                         v2.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))]),
    "geometric": v2.Compose([v2.RandomAffine(20, translate=(0.1, 0.1), scale=(0.8, 1.2)), v2.RandomRotation(30),
                             v2.RandomVerticalFlip(), TO_FLOAT]),
    "photometric": v2.Compose([v2.RandomPosterize(4, p=0.5), v2.RandomEqualize(p=0.5), v2.RandomAutocontrast(p=0.5),
                               v2.RandomAdjustSharpness(2.0, p=0.5), v2.RandomInvert(p=0.2), TO_FLOAT]),
    "trivialaugment": v2.Compose([v2.RandomResizedCrop(48), v2.RandomHorizontalFlip(), v2.TrivialAugmentWide(),
                                  TO_FLOAT, v2.RandomErasing(p=0.25)]),
    "randaugment": v2.Compose([v2.RandomResizedCrop(48), v2.RandAugment(2, 9), TO_FLOAT]),
    "autoaugment": v2.Compose([v2.RandomHorizontalFlip(), v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET), TO_FLOAT]),
    "eval": v2.Compose([v2.Resize(56), v2.CenterCrop(48), TO_FLOAT]),
    "perspective-choice": v2.Compose([v2.RandomPerspective(0.4, p=0.6), v2.RandomChoice(
        [v2.ColorJitter(brightness=0.5), v2.RandomGrayscale(1.0), v2.RandomSolarize(0.6, p=1.0)]), TO_FLOAT]),
}


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """sup |F_a - F_b| over the pooled sample: the two-sample Kolmogorov-Smirnov statistic."""
    pooled = torch.cat([a, b]).sort().values
    cdf = lambda x: torch.searchsorted(x.sort().values, pooled, right=True).double() / len(x)
    return (cdf(a) - cdf(b)).abs().max().item()


def per_image(views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = views.float().flatten(1)
    return flat.mean(dim=1), flat.std(dim=1)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_an_everyday_pipeline_converts_as_is_and_matches_torchvision(name, real_photos):
    pipeline, draws = PIPELINES[name], 12
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converted without a note: nothing augpipe does differently
        policy = from_torchvision(pipeline)
    ours = torch.cat([policy(real_photos, generator=torch.Generator().manual_seed(s)) for s in range(draws)])
    torch.manual_seed(0)
    theirs = torch.cat([torch.stack([pipeline(img) for img in real_photos]) for _ in range(draws)])
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    # n = m = 576: the statistic exceeds 0.096 with probability 0.1% when the distributions are one
    for ours_stat, theirs_stat, what in zip(per_image(ours), per_image(theirs), ("mean", "std")):
        assert ks_statistic(ours_stat, theirs_stat) < 0.096, f"{name}: per-image {what}"
