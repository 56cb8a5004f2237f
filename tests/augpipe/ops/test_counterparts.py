"""Each op declares what it is in the other libraries (`Op.counterparts`); the converter and the
engines read those declarations, so an op and its counterparts must mean the same thing."""
import warnings
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torchvision.transforms import v2

import augpipe
from augpipe import OPS
from augpipe.interop.engines import ENGINE_TABLE, Unsupported, build
from augpipe.interop.engines._torchvision import TorchvisionTarget
from augpipe.ops import Counterparts, Op, register_op
from tests.tolerance import assert_float_close

BOTH_WAYS = sorted(name for name, cls in OPS.items()
                   if cls.counterparts.to_torchvision and cls.counterparts.from_torchvision)


def test_every_torchvision_name_an_op_declares_is_a_v2_class_and_converts_back():
    for name, cls in OPS.items():
        for tv in cls.counterparts.torchvision:
            assert isinstance(getattr(v2, tv, None), type), f"{name}: v2.{tv}"
            assert cls.counterparts.from_torchvision is not None, name
    # the ops torchvision has and the converter reads: the SSL set and the recipes, both ways
    assert {"rrc", "flip", "jitter", "gray", "blur", "solarize", "noise", "rcrop", "erasing", "affine",
            "trivial_augment", "rand_augment", "auto_augment"} <= set(BOTH_WAYS)


@pytest.mark.parametrize("name", BOTH_WAYS)
def test_an_op_sent_to_torchvision_and_converted_back_gives_the_same_views(name, photo_batch):
    """op -> its v2 transform (the torchvision engine's) -> from_torchvision -> the same views for
    the same generator: the two directions of the declaration agree."""
    op = OPS[name]()
    transform = op.counterparts.to_torchvision(op, TorchvisionTarget("torchvision", v2, (32, 32)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = augpipe.from_torchvision(transform, size=32)
    assert [type(o) for o in back.views[0].ops if not o.changes_size or op.changes_size] == [type(op)]
    original = augpipe.build_policy(op.spec(), size=32, views=1)
    images = photo_batch[:, :, :32, :32].contiguous()
    expected = original(images, generator=torch.Generator().manual_seed(3))[0]
    got = back(images, generator=torch.Generator().manual_seed(3))
    assert_float_close(got, expected, roundings=64, extent=32)


@dataclass
class _Brighter(Op):
    """A user's op with a torchvision counterpart: x -> min(1, 1.5 x)."""
    name: ClassVar[str] = "test_brighter"
    counterparts: ClassVar[Counterparts] = Counterparts(
        torchvision=("ColorJitter",),  # never reached: a built-in already claims ColorJitter
        to_torchvision=lambda op, v2t: v2t.lib.Lambda(lambda x: (x * 1.5).clamp(0, 1)))

    def kernel(self, images, params, ctx):
        return (images * 1.5).clamp(0, 1)


@pytest.fixture
def brighter(monkeypatch):
    """`_Brighter` registered for one test (the registry is process-wide: other tests list it)."""
    monkeypatch.setattr(OPS, "_entries", dict(OPS._entries))
    register_op(_Brighter)


def test_a_users_op_runs_on_the_engines_its_counterparts_name_and_is_refused_by_the_others(brighter, photo_batch):
    assert "test_brighter" in ENGINE_TABLE["torchvision"].ops and "test_brighter" not in ENGINE_TABLE["kornia"].ops
    policy = augpipe.build_policy("test_brighter", size=32, views=1)
    images = photo_batch[:, :, :32, :32].contiguous()
    (ours,) = policy(images)
    (theirs,) = build("torchvision", policy)(images)
    assert_float_close(theirs, ours)
    with pytest.raises(Unsupported, match="^kornia: cannot run op 'test_brighter'"):
        build("kornia", policy)
    with pytest.raises(Unsupported, match="^dali: cannot run op 'test_brighter'"):
        build("dali", policy)
