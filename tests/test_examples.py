"""The examples run as users would run them (examples/*.py), at toy size on the CPU."""
import math
import runpy
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.slow  # training runs


def example(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def test_the_torchvision_dropin_trains_with_the_converted_pipeline():
    namespace = example("torchvision_dropin.py")
    policy = namespace["augpipe"].from_torchvision(namespace["train_transform"])
    assert [op.name for op in policy.views[0].ops] == ["rcrop", "flip", "trivial_augment", "normalize"]
    loss = namespace["main"](["--steps", "30", "--workers", "0"])
    assert loss < 1.5  # from ln(10) = 2.30 at chance: the digits are learnt through the policy


def test_the_lightning_module_augments_after_the_batch_transfer():
    pytest.importorskip("lightning")
    model, trainer = example("lightning_gpu_aug.py")["main"](["--steps", "6", "--batch-size", "64",
                                                                "--negatives", "1", "--workers", "0"])
    assert trainer.global_step == 6
    # every step saw two float views of the policy's size, made from the uint8 batch on the device
    assert model.seen_views == [(2, (64, 3, 32, 32), torch.float32)] * 6
    assert math.isfinite(float(trainer.callback_metrics["loss"]))


def test_the_segmentation_dropin_moves_each_mask_with_its_image_and_learns():
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    from loaders.sources.datasets import materialize
    namespace = example("segmentation_dropin.py")
    # the example's geometry alone: the moved masks are the strokes of the moved images (up to the
    # bilinear edges), where the masks as they came agree far less
    digits = ImageFolder(materialize("digits"), transform=v2.ToImage())
    images = torch.stack([digits[i][0] for i in range(64)])
    masks = (images[:, 0] > 128).long()
    geometry = v2.Compose([*namespace["train_transform"].transforms[:3], v2.ToDtype(torch.float32, scale=True)])
    out, moved = namespace["augpipe"].from_torchvision(geometry)(images, masks=masks,
                                                                 generator=torch.Generator().manual_seed(0))
    strokes = out[:, 0] > 0.5
    assert (strokes == moved.masks.bool()).float().mean() > 0.94
    assert (strokes == masks.bool()).float().mean() < 0.85
    assert namespace["main"](["--steps", "40", "--workers", "0"]) > 0.6  # the foreground IoU of its last batch
