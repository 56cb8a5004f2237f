"""Antialiased crops and resizes in a policy: per-sample filters, both gatings alike, no host
sync on the blend path, and the views torchvision's antialiased resized crop gives for the same boxes."""
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from augpipe import build_policy
from augpipe.diagnostics import count_ops
from tests.tolerance import assert_float_close

SPEC = "rrc(scale=0.05:0.4, antialias=true)+flip+jitter+gray(p=0.2)"


@pytest.fixture
def photos(photo_batch):
    return photo_batch.float().div(255)  # 48 px photographs: local crops of 16 px shrink them


def test_a_policy_antialiases_each_sample_as_torchvision_does(photos):
    policy = build_policy("rrc(scale=0.05:1, antialias=true)+flip(p=0.5)", size=16, views=1)
    (view,), params = policy(photos, generator=torch.Generator().manual_seed(0), return_params=True)
    crop, flip = params[0]
    for i in range(photos.shape[0]):
        ref = TF.resized_crop(photos[i], *crop["boxes"][i].tolist(), [16, 16], antialias=True)
        ref = TF.horizontal_flip(ref) if flip["apply"][i] else ref
        assert_float_close(view[i], ref, extent=48)


def test_blend_equals_subset_and_makes_no_host_sync(photos):
    blend = build_policy(SPEC, size=16, views=2, gating="blend")
    subset = build_policy(SPEC, size=16, views=2, gating="subset")
    for a, b in zip(blend(photos, generator=torch.Generator().manual_seed(1)),
                    subset(photos, generator=torch.Generator().manual_seed(1))):
        assert_float_close(a, b, extent=48)
    assert count_ops(lambda: blend(photos, generator=torch.Generator().manual_seed(1))).syncs == {}


def test_antialias_changes_shrinking_views_only(photos):
    g = lambda: torch.Generator().manual_seed(2)
    sharp = build_policy("rrc(scale=0.5:1)", size=16, views=1)(photos, generator=g())[0]
    smooth = build_policy("rrc(scale=0.5:1, antialias=true)", size=16, views=1)(photos, generator=g())[0]
    assert (sharp - smooth).abs().amax(dim=(1, 2, 3)).min() > 1e-2  # every crop of 24-48 px shrinks to 16
    up_sharp = build_policy("rrc(scale=0.02:0.05)", size=64, views=1)(photos, generator=g())[0]
    up_smooth = build_policy("rrc(scale=0.02:0.05, antialias=true)", size=64, views=1)(photos, generator=g())[0]
    assert_float_close(up_smooth, up_sharp, extent=48)  # enlarging: the same bilinear weights
