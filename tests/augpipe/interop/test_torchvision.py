"""`from_torchvision`: a v2 pipeline converts to a per-sample policy with torchvision's semantics."""
import warnings

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

import augpipe
from augpipe import UnsupportedTransform, build_policy, from_torchvision
from augpipe.diagnostics import count_ops
from tests.tolerance import assert_float_close

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@pytest.fixture
def batch(photo_batch):
    return photo_batch[:, :, :32, :32].contiguous()  # uint8, what a loader yields


def cifar_recipe():
    return v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(CIFAR_MEAN, CIFAR_STD)])


def test_the_cifar_recipe_replays_torchvisions_functional_ops(batch):
    policy = from_torchvision(cifar_recipe())
    out, params = policy(batch, generator=torch.Generator().manual_seed(0), return_params=True)
    assert isinstance(out, torch.Tensor) and out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    crop, flip, _ = params[0]
    for img, y, (top, left), flipped in zip(batch, out, crop["offsets"].tolist(), flip["apply"]):
        ref = TF.crop(TF.pad(TF.to_dtype(img, torch.float32, scale=True), [4]), top, left, 32, 32)
        ref = TF.normalize(TF.horizontal_flip(ref) if flipped else ref, CIFAR_MEAN, CIFAR_STD)
        assert_float_close(y, ref)
    assert 0 < int(flip["apply"].sum()) < 16


def test_simclrs_pipeline_is_the_simclr_cifar_preset():
    simclr = v2.Compose([v2.RandomResizedCrop(32, scale=(0.2, 1.0), antialias=False), v2.RandomHorizontalFlip(),
                         v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(p=0.2)])
    policy = from_torchvision(simclr, views=2)
    assert policy.spec == build_policy("simclr-cifar", size=32, views=2).spec
    assert len(policy(torch.zeros(4, 3, 40, 40, dtype=torch.uint8))) == 2  # several views: a list


def test_an_asymmetric_pair_gives_one_pipeline_per_view():
    first = v2.Compose([v2.RandomResizedCrop(24, antialias=False), v2.GaussianBlur(3, (0.1, 2.0))])
    second = v2.Compose([v2.RandomResizedCrop(24, antialias=False), v2.RandomSolarize(0.5, p=0.2)])
    policy = from_torchvision([first, second], views=4)
    names = [[op.name for op in view.ops] for view in policy.views]
    assert names == [["rrc", "blur"], ["rrc", "solarize"]] * 2


def per_image_means(outputs):
    return torch.cat([o.float().mean(dim=(1, 2, 3)) for o in outputs])


def test_photometric_statistics_match_torchvision_per_image(photo_batch):
    """Over many draws on the same images, the per-image means are distributed alike."""
    pipeline = v2.Compose([v2.RandomPosterize(3, p=0.5), v2.RandomAdjustSharpness(2.0, p=0.5),
                           v2.RandomAutocontrast(p=0.5), v2.RandomInvert(p=0.3), v2.RandomChannelPermutation(),
                           v2.RandomErasing(p=0.5, value=0)])
    x = photo_batch[:, :, :32, :32].float() / 255
    policy = from_torchvision(pipeline, size=32)
    ours = per_image_means([policy(x, generator=torch.Generator().manual_seed(s)) for s in range(40)])
    torch.manual_seed(0)
    theirs = per_image_means([torch.stack([pipeline(img) for img in x]) for _ in range(40)])
    qs = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    torch.testing.assert_close(ours.quantile(qs), theirs.quantile(qs), atol=0.02, rtol=0)
    assert abs(ours.std() - theirs.std()) < 0.01


def test_geometric_statistics_match_torchvision_per_image(photo_batch):
    pipeline = v2.Compose([v2.RandomAffine(20, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=(-10, 10)),
                           v2.RandomRotation(15, interpolation=v2.InterpolationMode.BILINEAR, fill=0.5),
                           v2.RandomPerspective(0.6, p=0.7, fill=0.2)])
    x = photo_batch.float() / 255
    policy = from_torchvision(pipeline, size=48)
    assert [op.name for op in policy.views[0].ops] == ["resize", "affine", "rotate", "perspective"]
    ours = per_image_means([policy(x, generator=torch.Generator().manual_seed(s)) for s in range(40)])
    torch.manual_seed(0)
    theirs = per_image_means([torch.stack([pipeline(img) for img in x]) for _ in range(40)])
    qs = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    torch.testing.assert_close(ours.quantile(qs), theirs.quantile(qs), atol=0.02, rtol=0)


@pytest.mark.parametrize("pipeline", [
    v2.Compose([v2.RandomAffine(20, translate=(0.1, 0.1)), v2.RandomRotation(30), v2.RandomVerticalFlip(),
                v2.ToDtype(torch.float32, scale=True)]),
    v2.Compose([v2.RandomPosterize(3, p=0.5), v2.RandomEqualize(p=0.5), v2.RandomAutocontrast(p=0.5),
                v2.RandomAdjustSharpness(2.0, p=0.5), v2.RandomInvert(p=0.3)]),
], ids=["geometric", "photometric"])
def test_a_pipeline_without_a_crop_keeps_the_input_size_as_torchvision_does(pipeline, photo_batch):
    """No size argument: the views have the batch's (non-square) size, and the per-image means
    are distributed like torchvision's on the same photographs."""
    x = photo_batch[:, :, :32, :48].contiguous()
    policy = from_torchvision(pipeline)
    assert "resize" not in [op.name for op in policy.views[0].ops]
    ours = [policy(x, generator=torch.Generator().manual_seed(s)) for s in range(40)]
    assert ours[0].shape == (x.shape[0], 3, 32, 48)
    torch.manual_seed(0)
    theirs = [torch.stack([pipeline(img) for img in x]) for _ in range(40)]
    assert theirs[0].shape[-2:] == ours[0].shape[-2:]
    scale = lambda t: t.float() / 255 if t.dtype == torch.uint8 else t
    qs = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    ours_m, theirs_m = per_image_means([scale(o) for o in ours]), per_image_means([scale(t) for t in theirs])
    torch.testing.assert_close(ours_m.quantile(qs), theirs_m.quantile(qs), atol=0.02, rtol=0)


def test_a_kept_size_policy_runs_on_the_other_engines_at_each_input_size(photo_batch):
    from augpipe.interop.engines import build
    policy = from_torchvision(v2.Compose([v2.RandomHorizontalFlip(), v2.RandomGrayscale(0.5)]))
    for hw in ((24, 40), (32, 32)):
        x = photo_batch[:, :, :hw[0], :hw[1]].contiguous()
        for engine in ("kornia", "torchvision"):
            (view,) = build(engine, policy)(x)
            assert view.shape == (x.shape[0], 3, *hw), engine


def test_an_unsupported_transform_is_named_with_its_position():
    pipeline = v2.Compose([v2.RandomCrop(32), v2.Compose([v2.RandomHorizontalFlip(), v2.ElasticTransform()])])
    with pytest.raises(UnsupportedTransform, match=r"ElasticTransform at pipeline\[1\]\[1\] is not supported .*"
                                                   r"fallback='per-image'.*supported: .*RandomErasing"):
        from_torchvision(pipeline)
    with pytest.raises(UnsupportedTransform, match="holds 2 ops under one coin"):
        from_torchvision(v2.RandomApply([v2.RandomInvert(), v2.RandomVerticalFlip()], p=0.5), size=8)


def test_the_per_image_fallback_runs_torchvision_reproducibly(batch):
    pipeline = v2.Compose([v2.RandomCrop(32), v2.ElasticTransform(alpha=20.0)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = from_torchvision(pipeline, fallback="per-image")
    assert [str(w.message) for w in caught if "image by image" in str(w.message)] != []
    assert "torchvision(p=1, transform=ElasticTransform" in policy.spec
    a = policy(batch, generator=torch.Generator().manual_seed(1))
    b = policy(batch, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, batch.float() / 255)


def test_converted_pipelines_make_no_host_sync_on_the_blend_path(batch):
    pipelines = [cifar_recipe(),
                 v2.Compose([v2.RandomResizedCrop(24, antialias=False), v2.RandomVerticalFlip(),
                             v2.RandomApply([v2.GaussianNoise(sigma=0.1)], p=0.5), v2.RandomErasing(value="random")])]
    for pipeline in pipelines:
        policy = from_torchvision(pipeline, views=2, gating="blend")
        g = torch.Generator().manual_seed(0)
        policy(batch, generator=g)
        assert count_ops(lambda: policy(batch, generator=g)).syncs == {}


def test_dtype_antialias_and_solarize_scale_are_honoured_or_warned(batch):
    policy = from_torchvision(v2.Compose([v2.RandomResizedCrop(16), v2.ToDtype(torch.bfloat16, scale=True)]))
    assert policy(batch).dtype == torch.bfloat16
    assert policy.views[0].ops[0].antialias  # torchvision's default, True
    assert not from_torchvision(v2.RandomResizedCrop(16, antialias=False)).views[0].ops[0].antialias
    assert from_torchvision(v2.Resize(16)).views[0].ops[0].antialias
    with pytest.warns(UserWarning, match="threshold 128 read on the uint8 scale"):
        solarize = from_torchvision(v2.RandomSolarize(128, p=1.0), size=32)
    assert solarize.views[0].ops[-1].threshold == pytest.approx(128 / 255)
    assert isinstance(augpipe.from_torchvision(cifar_recipe(), compile=False).with_options(gating="blend"),
                      augpipe.interop._torchvision.DropInPolicy)


def test_random_choice_runs_one_transform_per_sample_with_its_weights():
    x = torch.rand(4000, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    choice = v2.RandomChoice([v2.RandomInvert(1.0), v2.RandomVerticalFlip(1.0), v2.Identity()], p=[0.2, 0.5, 0.3])
    policy = from_torchvision(choice, size=4)
    out, params = policy(x, generator=torch.Generator().manual_seed(1), return_params=True)
    picked = params[0][1]["choice"]
    assert abs(torch.bincount(picked, minlength=3).float() / 4000 - torch.tensor([0.2, 0.5, 0.3])).max() < 0.025
    expected = torch.stack([1 - x, x.flip(-2), x])[picked, torch.arange(4000)]
    torch.testing.assert_close(out, expected, atol=0, rtol=0)


def test_random_order_runs_every_transform_in_each_samples_order():
    x = torch.rand(64, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    order = v2.RandomOrder([v2.RandomInvert(1.0), v2.RandomPosterize(1, p=1.0)])
    out, params = from_torchvision(order, size=5)(x, generator=torch.Generator().manual_seed(2), return_params=True)
    first_invert = params[0][1]["order"][:, 0] == 0
    invert_then = TF.posterize(1 - x, 1)
    posterize_then = 1 - TF.posterize(x, 1)
    torch.testing.assert_close(out, torch.where(first_invert.view(-1, 1, 1, 1), invert_then, posterize_then))
    assert 0 < int(first_invert.sum()) < 64 and not torch.equal(invert_then, posterize_then)


def test_choice_and_order_make_no_host_sync_and_compose_with_the_rest(batch):
    pipeline = v2.Compose([v2.RandomCrop(24), v2.RandomChoice([v2.RandomInvert(1.0), v2.GaussianNoise(sigma=0.1)]),
                           v2.RandomOrder([v2.RandomAutocontrast(1.0), v2.RandomPosterize(2, p=0.5)])])
    policy = from_torchvision(pipeline, gating="blend")
    assert "one_of(invert(p=1) | noise(" in policy.spec and "random_order(autocontrast" in policy.spec
    g = torch.Generator().manual_seed(0)
    policy(batch, generator=g)
    assert count_ops(lambda: policy(batch, generator=g)).syncs == {}
    with pytest.raises(UnsupportedTransform, match="each choice must be one size-keeping transform"):
        from_torchvision(v2.RandomChoice([v2.RandomCrop(8), v2.RandomInvert()]))


@pytest.mark.slow
def test_a_converted_pipeline_compiles_fullgraph_and_equals_eager(batch):
    """One full graph with every op of torchvision's recipes, traced by dynamo and AOT autograd
    (`aot_eager`: a graph break or a data-dependent shape fails here as under inductor, without
    inductor's 35 s of cold code generation; inductor's code is checked on the SSL ops in
    tests/augpipe/policy/test_compile.py and on the GPU by make gpu-check). AutoAugment's and RandAugment's
    kernel is TrivialAugmentWide's (`ops._auto_augment._AutoAugment.kernel`, one more op for AutoAugment:
    Invert, traced here inside RandomChoice); tracing AutoAugment's two slots too costs 10 s more."""
    pipeline = v2.Compose([
        v2.RandomCrop(24, padding=2, padding_mode="reflect"), v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(0.3),
        v2.RandomChoice([v2.RandomInvert(1.0), v2.RandomEqualize(1.0), v2.RandomChannelPermutation()]),
        v2.RandomOrder([v2.RandomAutocontrast(1.0), v2.RandomPosterize(2, p=0.5), v2.RandomAdjustSharpness(2, p=0.5)]),
        v2.RandomAffine(20, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=(-5, 5)),
        v2.RandomRotation(15, interpolation=v2.InterpolationMode.BILINEAR, fill=0.5), v2.RandomPerspective(0.4),
        v2.TrivialAugmentWide(), v2.RandomErasing(value="random")])
    policy = from_torchvision(pipeline, gating="blend")
    params = policy.sample(batch, generator=torch.Generator().manual_seed(3))
    eager = policy.apply(batch, params)
    compiled = torch.compile(policy.apply, fullgraph=True, backend="aot_eager")(batch, params)
    # quantising ops (posterize, equalize) floor x * levels: a last-bit difference of inductor's
    # fused arithmetic can cross a step. Elsewhere the views agree to float rounding.
    differ = (compiled[0] - eager[0]).abs() > 1e-5
    assert differ.float().mean() < 0.002
    assert (compiled[0] - eager[0]).abs().max() <= 1 / 64


def test_augment_is_a_module_in_a_sequential_with_its_own_seeded_draws(batch):
    import torch.nn as nn
    policy = from_torchvision(cifar_recipe())
    model = nn.Sequential(augpipe.Augment(policy, seed=7), nn.Flatten(), nn.Linear(3 * 32 * 32, 4))
    assert model(batch).shape == (16, 4)
    assert list(model[0].parameters()) == [] and model[0].state_dict() == {} and model.to("cpu") is model
    a, b = augpipe.Augment(policy, seed=7), augpipe.Augment(policy, seed=7)
    first = a(batch)
    assert torch.equal(first, b(batch))                       # the same seed, the same views
    assert not torch.equal(first, a(batch))                   # the generator advances per call
    assert not torch.equal(first, augpipe.Augment(policy, seed=7, rank=1)(batch))  # ranks differ
    assert "seed=7" in repr(a)


@pytest.mark.parametrize("pipeline", [
    v2.Resize(24), v2.Resize(20, antialias=False), v2.Compose([v2.Resize(40), v2.CenterCrop(30)]),
    v2.Compose([v2.Resize((40, 44)), v2.CenterCrop(32)]),
], ids=["shorter-side", "shorter-side-plain", "resize-then-centre", "pinned-then-centre"])
def test_deterministic_resizes_equal_torchvision_on_a_non_square_batch(pipeline, photo_batch):
    """torchvision's Resize(int) sets the shorter side (the longer in proportion) and may be
    followed by a crop: the same output, shape and values, for every image."""
    x = photo_batch[:, :, :32, :48].float().div(255).contiguous()
    policy = from_torchvision(pipeline)
    ours = policy(x)
    theirs = torch.stack([pipeline(img) for img in x])
    assert ours.shape == theirs.shape
    assert_float_close(ours, theirs, extent=48)


def test_a_size_after_a_crop_is_refused_in_one_line():
    with pytest.raises(UnsupportedTransform, match=r"^from_torchvision: CenterCrop at pipeline\[1\] resizes to "
                                                   r"\(16, 16\) after an earlier transform set \(24, 24\); only a "
                                                   r"Resize may come before another size$"):
        from_torchvision(v2.Compose([v2.RandomResizedCrop(24), v2.CenterCrop(16)]))
