"""TrivialAugmentWide, RandAugment and AutoAugment per sample (augpipe/ops/_auto_augment.py): every op of the
space equals torchvision's for the same magnitude, the tables are torchvision's, the draws follow
torchvision's rules, the views its statistics."""
import math

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from augpipe import build_policy, from_torchvision
from augpipe.ops._auto_augment import AUTOAUGMENT_SPACE, JOINT, RANDAUGMENT_SPACE, TRIVIAL_SPACE, apply_joint, apply_one
from augpipe.ops._autoaugment_policies import POLICIES
from tests.tolerance import assert_float_close


def torchvision_op(name, image, m):
    """torchvision's `_apply_image_or_video_transform`, spelled with public functional ops."""
    nearest = TF.InterpolationMode.NEAREST
    shear = math.degrees(math.atan(m))
    return {
        "ShearX": lambda: TF.affine(image, 0.0, [0, 0], 1.0, [shear, 0.0], nearest, None, [0, 0]),
        "ShearY": lambda: TF.affine(image, 0.0, [0, 0], 1.0, [0.0, shear], nearest, None, [0, 0]),
        "TranslateX": lambda: TF.affine(image, 0.0, [int(m), 0], 1.0, [0.0, 0.0], nearest, None),
        "TranslateY": lambda: TF.affine(image, 0.0, [0, int(m)], 1.0, [0.0, 0.0], nearest, None),
        "Rotate": lambda: TF.rotate(image, m, nearest, fill=None),
        "Brightness": lambda: TF.adjust_brightness(image, 1.0 + m),
        "Color": lambda: TF.adjust_saturation(image, 1.0 + m),
        "Contrast": lambda: TF.adjust_contrast(image, 1.0 + m),
        "Sharpness": lambda: TF.adjust_sharpness(image, 1.0 + m),
        "Posterize": lambda: TF.posterize(image, int(m)),
        "Solarize": lambda: TF.solarize(image, m),
        "AutoContrast": lambda: TF.autocontrast(image),
        "Equalize": lambda: TF.equalize(image),
        "Invert": lambda: TF.invert(image),
        "Identity": lambda: image,
    }[name]()


@pytest.mark.parametrize("name", [name for name, _, _ in AUTOAUGMENT_SPACE])
def test_every_op_of_the_space_equals_torchvisions(name):
    x = torch.rand(5, 3, 14, 18, generator=torch.Generator().manual_seed(0))
    m = torch.tensor({"Posterize": [1., 3., 5., 7., 8.], "Solarize": [0.0, 0.3, 0.5, 0.9, 1.0],
                      "TranslateX": [-5.7, -1.0, 0.0, 2.4, 9.0], "TranslateY": [-5.7, -1.0, 0.0, 2.4, 9.0],
                      "Rotate": [-135.0, -30.0, 0.0, 45.5, 90.0]}.get(name, [-0.99, -0.3, 0.0, 0.4, 0.99]))
    ref = torch.stack([torchvision_op(name, img, float(v)) for img, v in zip(x, m)])
    assert_float_close(apply_one(name, x, m, "nearest", None), ref)


@pytest.mark.parametrize("fill", [None, 0.5])
@pytest.mark.parametrize("name", ["TranslateX", "TranslateY"])
def test_translations_by_row_copies_equal_torchvisions(name, fill):
    """The CPU path's shifted copies (from 80 x 80 px) equal F.affine, shifts off the image included."""
    x = torch.rand(6, 3, 90, 96, generator=torch.Generator().manual_seed(1))
    m = torch.tensor([-150.0, -95.2, -7.9, 0.0, 13.6, 91.0])
    ref = torch.stack([TF.affine(img, 0.0, [int(v), 0] if name == "TranslateX" else [0, int(v)], 1.0, [0.0, 0.0],
                                 TF.InterpolationMode.NEAREST, None if fill is None else [fill])
                       for img, v in zip(x, m)])
    out = apply_one(name, x, m, "nearest", fill, rows_loop=True)
    torch.testing.assert_close(out, ref, atol=0, rtol=0)
    assert_float_close(apply_one(name, x, m, "nearest", fill, rows_loop=False), ref)


@pytest.mark.parametrize("side, rows_loop", [(16, False), (90, True)])
def test_jointly_run_entries_equal_torchvisions_row_by_row(side, rows_loop):
    """Shears and rotations as one F.affine, both translations as one shift: each row as
    torchvision's own op for that row's entry and magnitude."""
    names = [name for name, _, _ in AUTOAUGMENT_SPACE]
    x = torch.rand(8, 3, side, side + 6, generator=torch.Generator().manual_seed(2))
    for kind, chosen, m in [("affine", ["ShearX", "Rotate", "ShearY", "ShearX", "Rotate", "ShearY", "Rotate", "ShearX"],
                             [0.3, -30.0, -0.25, -0.9, 12.5, 0.99, 0.0, 0.0]),
                            ("translate", ["TranslateX", "TranslateY"] * 4, [-9.7, 4.2, 0.0, -1.0, 150.0, -33.3, 7.9, 2.0])]:
        assert all(JOINT[name] == kind for name in chosen)
        op = torch.tensor([names.index(name) for name in chosen])
        ref = torch.stack([torchvision_op(name, img, v) for name, img, v in zip(chosen, x, m)])
        out = apply_joint(kind, x, op, torch.tensor(m), names, "nearest", None, rows_loop)
        assert_float_close(out, ref)


@pytest.mark.parametrize("cls, space", [(v2.TrivialAugmentWide, TRIVIAL_SPACE), (v2.RandAugment, RANDAUGMENT_SPACE),
                                        (v2.AutoAugment, AUTOAUGMENT_SPACE)])
def test_the_magnitude_tables_are_torchvisions(cls, space):
    theirs = getattr(cls, "_AUGMENTATION_SPACE", None)
    if theirs is None:
        pytest.skip("this torchvision keeps its space elsewhere")
    assert [name for name, _, _ in space if name != "Identity"] == [name for name in theirs if name != "Identity"]
    for name, magnitudes, signed in space:
        if name == "Identity" and name not in theirs:  # AutoAugment's "not applied": our entry 0
            continue
        table, their_signed = theirs[name]
        expected = table(31, 24, 40)
        assert signed == their_signed
        if expected is None:
            assert magnitudes is None
        else:
            assert torch.equal(magnitudes(31, 24, 40, torch.device("cpu")).float(), expected.float()), name


def test_trivialaugment_draws_one_op_a_uniform_bin_and_a_fair_sign():
    policy = build_policy("trivial_augment", size=8, views=1)
    _, params = policy(torch.rand(14000, 3, 8, 8), generator=torch.Generator().manual_seed(0), return_params=True)
    p = params[0][1]
    counts = torch.bincount(p["op0"], minlength=14).float()
    assert len(counts) == 14 and (counts / 14000 - 1 / 14).abs().max() < 0.012
    rotate = p["magnitude0"][p["op0"] == 5]
    assert abs((rotate < 0).float().mean() - 0.5) < 0.06 and rotate.abs().max() <= 135
    assert len(set(rotate.abs().tolist())) == 31  # every bin drawn


def test_randaugment_uses_its_magnitude_bin_on_num_ops_slots():
    policy = build_policy("rand_augment(3,9)", size=32, views=1)
    _, params = policy(torch.rand(3000, 3, 32, 32), generator=torch.Generator().manual_seed(1), return_params=True)
    p = params[0][1]
    assert {"op0", "op1", "op2"} <= set(p)
    rotate = p["magnitude1"][p["op1"] == 5]
    assert torch.allclose(rotate.abs(), torch.full_like(rotate, 9.0))  # linspace(0, 30, 31)[9]
    translate = p["magnitude0"][p["op0"] == 3]
    assert torch.allclose(translate.abs(), torch.full_like(translate, 150.0 / 331.0 * 32 * 9 / 30))


@pytest.mark.parametrize("transform", [v2.TrivialAugmentWide(), v2.RandAugment(2, 9),
                                       v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)], ids=["trivial", "rand", "auto"])
def test_statistics_match_torchvision_per_image(transform, photo_batch):
    x = photo_batch.float() / 255
    policy = from_torchvision(transform, size=48)
    ours = torch.cat([policy(x, generator=torch.Generator().manual_seed(s)).mean(dim=(1, 2, 3)) for s in range(60)])
    torch.manual_seed(0)
    theirs = torch.cat([torch.stack([transform(img) for img in x]).mean(dim=(1, 2, 3)) for _ in range(60)])
    qs = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    torch.testing.assert_close(ours.quantile(qs), theirs.quantile(qs), atol=0.03, rtol=0)


def test_blend_and_subset_agree_and_bad_values_are_named(photo_batch):
    for spec in ("trivial_augment(p=0.8)", "rand_augment(2,12,mode=bilinear,fill=0.5)", "auto_augment(svhn,p=0.9)"):
        blend, subset = (build_policy(spec, size=32, gating=g) for g in ("blend", "subset"))
        params = blend.sample(photo_batch, generator=torch.Generator().manual_seed(2))
        for a, b in zip(blend.apply(photo_batch, params), subset.apply(photo_batch, params)):
            assert_float_close(a, b)
    large = torch.nn.functional.interpolate(photo_batch, size=96, mode="bilinear").clamp_(0, 1)
    for spec in ("trivial_augment", "rand_augment(2,12,fill=0.5)"):  # 96 px: the row-copy translations
        blend, subset = (build_policy(spec, size=96, gating=g) for g in ("blend", "subset"))
        params = blend.sample(large, generator=torch.Generator().manual_seed(3))
        for a, b in zip(blend.apply(large, params), subset.apply(large, params)):
            assert_float_close(a, b)
    with pytest.raises(ValueError, match="rand_augment: magnitude must be an integer in \\[0, bins\\)"):
        build_policy("rand_augment(2,31)", size=8)
    with pytest.raises(ValueError, match="auto_augment: policy must be one of imagenet, cifar10, svhn, got 'mnist'"):
        build_policy("auto_augment(mnist)", size=8)


@pytest.mark.parametrize("policy", list(POLICIES))
def test_autoaugment_policies_are_torchvisions(policy):
    theirs = getattr(v2.AutoAugment(v2.AutoAugmentPolicy(policy)), "_policies", None)
    if theirs is None:
        pytest.skip("this torchvision keeps its policies elsewhere")
    assert POLICIES[policy] == [tuple(sub_policy) for sub_policy in theirs]


def test_autoaugment_draws_a_uniform_sub_policy_its_coins_and_its_magnitudes():
    n, (h, w) = 25000, (20, 28)
    policy = build_policy("auto_augment(cifar10)", size=(h, w), views=1)
    _, params = policy(torch.rand(n, 3, h, w), generator=torch.Generator().manual_seed(5), return_params=True)
    p, names = params[0][1], [name for name, _, _ in AUTOAUGMENT_SPACE]
    chosen = p["sub_policy"]
    assert (torch.bincount(chosen, minlength=25).float() / n - 1 / 25).abs().max() < 0.006
    for j, sub_policy in enumerate(POLICIES["cifar10"]):
        mine = chosen == j
        for slot, (name, probability, bin_) in enumerate(sub_policy):
            op, m = p[f"op{slot}"][mine], p[f"magnitude{slot}"][mine]
            applied = op != 0
            assert abs(applied.float().mean() - probability) < 0.07, (j, slot)
            assert (op[applied] == names.index(name)).all()
            magnitudes, signed = dict((k, (f, s)) for k, f, s in AUTOAUGMENT_SPACE)[name]
            if magnitudes is not None:
                expected = float(magnitudes(10, h, w, torch.device("cpu"))[bin_])
                torch.testing.assert_close(m[applied].abs(), torch.full_like(m[applied], abs(expected)))
                if signed and applied.sum() > 200 and expected != 0:
                    assert abs((m[applied] < 0).float().mean() - 0.5) < 0.1
