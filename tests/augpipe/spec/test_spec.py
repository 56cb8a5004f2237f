"""Policies by name (augpipe/spec): presets, spec strings, overrides, the views grammar, and their one-line errors."""
import pytest
import torch

import augpipe
from augpipe import SpecError, build_policy, list_policies


def test_list_policies_has_the_named_presets():
    assert {"simclr", "byol", "vicreg", "noise", "crop", "crop-gray", "none"} <= set(list_policies())


def test_a_generator_that_is_not_one_and_a_spec_that_is_not_text_are_named():
    with pytest.raises(TypeError, match="generator must be a torch.Generator \\(or None\\), got str"):
        build_policy("crop", size=8)(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), generator="seed")
    with pytest.raises(TypeError, match="spec must be a preset name or a spec string like 'rrc\\+flip', got NoneType"):
        build_policy(None, size=8)


def test_custom_spec_from_the_issue(photo_batch, gen):
    spec = "rrc(scale=0.2:1)+flip+jitter(0.4,0.4,0.4,0.1,p=0.8)+gray(p=0.2)+noise(std=0.05)"
    policy = build_policy(spec, size=32)
    names = [op.name for op in policy.views[0].ops]
    assert names == ["rrc", "flip", "jitter", "gray", "noise"]
    jitter = policy.views[0].ops[2]
    assert (jitter.brightness, jitter.hue, jitter.p) == (0.4, 0.1, 0.8)
    assert policy.views[0].ops[0].scale == (0.2, 1.0)
    assert policy.views[0].ops[4].std == (0.05, 0.05)
    assert len(policy(photo_batch, generator=gen)) == 2


def test_overrides_of_a_named_policy():
    policy = build_policy("byol[blur.p=0.3, solarize.p=0]", size=32)
    v1, v2 = ({op.name: op for op in view.ops} for view in policy.views)
    assert v1["blur"].p == v2["blur"].p == 0.3 and v2["solarize"].p == 0.0
    assert build_policy("noise[std=0.05:0.2]", size=32).views[0].ops[-1].std == (0.05, 0.2)


def test_asymmetric_byol_views():
    v1, v2 = (view.ops for view in build_policy("byol", size=32).views)
    blur1, blur2 = (next(o for o in ops if o.name == "blur") for ops in (v1, v2))
    assert (blur1.p, blur2.p) == (1.0, 0.1)
    assert "solarize" not in [o.name for o in v1]
    assert next(o for o in v2 if o.name == "solarize").p == 0.2


def _ops(spec):
    return [view.ops for view in build_policy(spec, size=32).views]


def _without_blur(chains):
    return [[op for op in ops if op.name != "blur"] for ops in chains]


def test_small_image_presets_follow_the_cifar_recipes():
    """solo-learn's CIFAR configs: BYOL is its ImageNet pair without blur; VICReg is symmetric
    (both views as BYOL's second view, crops 0.2-1, solarize 0.1, no blur); SimCLR's CIFAR recipe
    halves the colour strength, crops 0.2-1, no blur."""
    assert _ops("byol-cifar") == _without_blur(_ops("byol"))
    vicreg = _without_blur(_ops("vicreg[rrc.scale=0.2:1, solarize.p=0.1]"))[1]
    assert _ops("vicreg-cifar") == [vicreg, vicreg]
    simclr = _without_blur(_ops("simclr[rrc.scale=0.2:1, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1]"))
    assert _ops("simclr-cifar") == simclr


@pytest.mark.parametrize("spec, message", [
    ("simclrr", "valid policies: byol"),
    ("rrc+flop", "unknown op 'flop'; valid ops: affine, auto_augment, autocontrast, blur, center_crop, channel_permutation, equalize"),
    ("jitter(bright=0.4)", "unknown argument 'bright'; valid: p, brightness"),
    ("rrc(scale=big)", "scale='big' is not valid, expected a number or a range"),
    ("flip(p=1.5)", "p must be in \\[0, 1\\]"),
    ("blur(k=4)", "positive odd integer"),
    ("simclr[blur.q=1]", "unknown argument 'q'"),
    ("noise[sigma=1]", "ambiguous or unknown"),
    ("crop[solarize.p=1]", "has no op 'solarize'"),
    ("normalize(stats=mnist)", "stats must be one of"),
    ("", "empty policy spec"),
    # values that cannot mean anything: every number finite, every range ordered (Op.validate)
    ("noise(std=inf)", "noise: std must be finite, got inf:inf"),
    ("jitter(inf,0,0,0,p=1)", "jitter: brightness must be finite, got inf"),
    ("jitter(nan,0.4,0.4,0.1)", "jitter: brightness must be finite, got nan"),
    ("solarize(threshold=nan)", "solarize: threshold must be finite"),
    ("solarize(threshold=5)", "solarize: threshold must be in \\[0, 1\\] \\(the images' scale\\), got 5"),
    ("blur(sigma=0.1:inf)", "blur: sigma must be finite, got 0.1:inf"),
    ("affine(translate_x=nan)", "affine: translate_x must be finite"),
    ("noise(std=0.2:0.1)", "noise: std range must be ordered LO:HI, got 0.2:0.1"),
    ("flip(p=0.5,p=0.2)", "flip: argument 'p' given twice"),
    ("flip(0.5,p=0.2)", "flip: argument 'p' given twice"),
])
def test_bad_specs_give_one_line_errors(spec, message):
    with pytest.raises(SpecError, match=message) as err:
        build_policy(spec, size=32)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("size, views, message", [
    (0, 2, "size must be a whole number of pixels >= 1 \\(or two: height, width\\), got 0"),
    (-3, 2, "size must be a whole number of pixels >= 1"),
    ((8, 0), 2, "got \\(8, 0\\)"),
    (16.5, 2, "size must be a whole number of pixels >= 1 \\(or two: height, width\\), got 16.5"),
    (8, "2x16@0.5:0.1", "views '2x16@0.5:0.1': crop scale must satisfy 1e-06 <= lo <= hi <= 1, got 0.5:0.1"),
    (8, "2x16@5:9", "views '2x16@5:9': crop scale must satisfy"),
])
def test_bad_sizes_and_views_are_named(size, views, message):
    with pytest.raises(ValueError, match=message) as err:
        build_policy("crop", size=size, views=views)
    assert "\n" not in str(err.value)


def test_multicrop_views(photo_batch, gen):
    policy = build_policy("simclr", size=32, views="2x32+6x16@0.05:0.14")
    views = policy(photo_batch, generator=gen)
    assert [tuple(v.shape[-2:]) for v in views] == [(32, 32)] * 2 + [(16, 16)] * 6
    assert policy.views[0].ops[0].scale == (0.08, 1.0) and policy.views[2].ops[0].scale == (0.05, 0.14)
    with pytest.raises(ValueError, match="COUNTxSIZE"):
        build_policy("simclr", size=32, views="2x")


def test_repr_and_spec_roundtrip():
    policy = build_policy("simclr", size=32)
    again = build_policy(policy.views[0].ops and policy.spec.split(" | ")[0], size=32)
    assert again.spec == policy.spec
    assert "simclr" in repr(policy)
    assert augpipe.check_images(torch.zeros(1, 3, 2, 2)) is None


def test_without_a_size_a_policy_keeps_the_input_size_and_a_crop_asks_for_one(photo_batch, gen):
    x = photo_batch[:, :, :24, :40].contiguous()
    policy = build_policy("jitter+gray+blur", views=2)
    assert [op.name for op in policy.views[0].ops] == ["jitter", "gray", "blur"]  # no implied resize
    views = policy(x, generator=gen)
    assert [tuple(v.shape) for v in views] == [(x.shape[0], 3, 24, 40)] * 2
    assert "views=input+input" in repr(policy)
    sized = build_policy("jitter+gray+blur", size=(24, 40), views=2)  # the same ops once resized to the same size
    for ours, stated in zip(policy(x, generator=torch.Generator().manual_seed(1)),
                            sized(x, generator=torch.Generator().manual_seed(1))):
        assert torch.equal(ours, stated)
    with pytest.raises(SpecError, match=r"^build_policy\('simclr'\): a view without a size keeps the input's, "
                                        r"but rrc sets one; pass size=$"):
        build_policy("simclr")


def test_a_kept_size_policy_makes_no_host_sync_with_blend_gating(photo_batch, gen):
    from augpipe.diagnostics import count_ops
    policy = build_policy("flip+jitter+gray+blur+solarize", views=2, gating="blend")
    x = photo_batch[:, :, :24, :40].contiguous()
    counts = count_ops(lambda: policy(x, generator=gen))
    assert counts.syncs == {} and counts.ops > 0
