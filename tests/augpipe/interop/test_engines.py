"""One policy, the same semantics on every engine: augpipe, stock Kornia, torchvision, DALI."""
import importlib.util

import pytest
import torch

from augpipe import build_policy
from augpipe.interop.engines import ENGINES, Unsupported, build
from tests.tolerance import assert_float_close

HAVE_DALI = importlib.util.find_spec("nvidia") is not None and importlib.util.find_spec("nvidia.dali") is not None
MISSING = {"dali": None if HAVE_DALI else "DALI not installed",
           "torchaug": None if importlib.util.find_spec("torchaug") else
           "torchaug not installed (optional: it pins torchvision<0.20; pip install --no-deps torchaug)"}
# The compiled engines run the same chains as their eager twins (compiled == eager is tested in
# tests/augpipe/policy/test_compile.py); compiling each case here would cost minutes for no new semantics.
ENGINE_PARAMS = [pytest.param(e, marks=pytest.mark.skipif(bool(MISSING.get(e)), reason=MISSING.get(e) or ""))
                 for e in ENGINES if not e.endswith("-compiled")]


def run(engine, spec, images, size=32, views=1):
    policy = build_policy(spec, size=size, views=views)
    fn = build(engine, policy, batch_size=images.shape[0]) if engine == "dali" else build(engine, policy)
    if engine == "augpipe":
        return fn(images, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    return fn(images)


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
@pytest.mark.parametrize("policy", ["simclr", "byol", "noise", "crop", "none"])
def test_engine_runs_default_policies(engine, policy, photo_batch):
    views = run(engine, policy, photo_batch, views=2)
    assert len(views) == 2
    for v in views:
        assert v.shape == (16, 3, 32, 32) and v.dtype == torch.float32
        assert -1e-6 <= v.min() and v.max() <= 1 + 1e-6


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_identity_flip_and_full_crop_agree_exactly(engine, photo_batch):
    x = photo_batch.float() / 255
    assert_float_close(run(engine, "none", photo_batch, size=48)[0], x, roundings=64)
    assert_float_close(run(engine, "flip(p=1)", photo_batch, size=48)[0], x.flip(-1), roundings=64)
    full = run(engine, "rrc(scale=1:1,ratio=1:1)", photo_batch, size=48)[0]
    assert_float_close(full, x, roundings=64)


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_grayscale_agrees_across_engines(engine, photo_batch):
    gray = run(engine, "gray(p=1)", photo_batch, size=48)[0]
    ours = run("augpipe", "gray(p=1)", photo_batch, size=48)[0]
    # R == G == B (DALI works in uint8 and a YIQ round trip: one grey level of slack)
    assert (gray.max(1).values - gray.min(1).values).max() < 1.5 / 255
    assert (gray - ours).abs().mean() < 0.01  # same luma up to the engine's weights and rounding


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_brightness_distribution_agrees_across_engines(engine):
    images = torch.full((512, 3, 8, 8), 100, dtype=torch.uint8)
    out = run(engine, "jitter(0.5,0,0,0,p=1)", images, size=8)[0]
    factor = out.mean(dim=(1, 2, 3)) / (100 / 255)
    assert factor.min() >= 0.5 - 0.02 and factor.max() <= 1.5 + 0.02
    assert abs(factor.mean() - 1.0) < 0.04 and abs(factor.std() - 1 / 12 ** 0.5) < 0.03
    assert factor.unique().numel() > 50  # per-sample factors (DALI: quantised to uint8 levels)


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_noise_std_agrees_across_engines(engine):
    images = torch.full((64, 3, 32, 32), 128, dtype=torch.uint8)
    out = run(engine, "noise(std=0.05)", images)[0]
    measured = (out - 128 / 255).flatten(1).std(dim=1)
    assert (measured - 0.05).abs().max() < 0.006


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_crop_area_distribution_agrees_across_engines(engine):
    # a white square on black: the fraction of white in the crop tracks the crop's box
    images = torch.zeros(1024, 3, 64, 64, dtype=torch.uint8)
    images[:, :, 16:48, 16:48] = 255
    out = run(engine, "rrc(scale=0.08:1)", images, size=32)[0]
    white = out.mean(dim=(1, 2, 3))
    ours = run("augpipe", "rrc(scale=0.08:1)", images, size=32)[0].mean(dim=(1, 2, 3))
    for q in (0.25, 0.5, 0.75):
        assert abs(torch.quantile(white, q) - torch.quantile(ours, q)) < 0.06, q


def test_unsupported_ops_are_named():
    with pytest.raises(Unsupported, match="kornia: noise with a std range"):
        build("kornia", build_policy("noise(std=0.05:0.1)", size=8))
    with pytest.raises(ValueError, match="unknown engine 'pil'"):
        build("pil", build_policy("none", size=8))


def test_augpipe_variants_keep_every_other_option():
    policy = build_policy("simclr", size=32, dtype="bf16", channels_last=True, time_ops=True, cpu_threads="keep")
    for engine, compile_, gating in (("augpipe-eager", False, "auto"), ("augpipe-compiled", True, "blend")):
        runner = build(engine, policy)
        variant = runner.policy.options
        assert runner.native and (variant.compile, variant.gating) == (compile_, gating)
        assert (variant.dtype, variant.channels_last, variant.time_ops, variant.cpu_threads) == \
            (torch.bfloat16, True, True, "keep")
        assert runner.policy.views is policy.views


@pytest.mark.parametrize("spec", ["equalize(p=1)+vflip(p=1)+invert(p=1)+autocontrast(p=1)",
                                  "posterize(bits=3,p=1)+sharpness(factor=1.5,p=1)+center_crop"])
def test_the_torchvision_engine_runs_the_recipe_ops_with_the_same_result(spec, photo_batch):
    size = 40 if "center_crop" in spec else 48  # equalize on the loaded levels (a resize would requantise)
    assert_float_close(run("torchvision", spec, photo_batch, size=size)[0],
                       run("augpipe", spec, photo_batch, size=size)[0], extent=size)


def test_the_torchvision_engine_names_a_range_it_cannot_take():
    with pytest.raises(Unsupported, match="torchvision: posterize with a bits range"):
        build("torchvision", build_policy("posterize(bits=2:5)", size=8))
    with pytest.raises(Unsupported, match="kornia: cannot run op 'sharpness'"):
        build("kornia", build_policy("rrc+sharpness", size=8))
    with pytest.raises(Unsupported, match="kornia: erasing value 'random'"):
        build("kornia", build_policy("erasing(value=random)", size=8))


def test_kornia_and_torchvision_run_the_recipe_presets_and_kornias_deterministic_ops_agree(photo_batch):
    for engine in ("kornia", "torchvision"):
        for preset in ("cifar-aa", "timm-ra", "trivialaugment", "rrc+perspective(p=1)"):
            views = run(engine, preset, photo_batch, size=24, views=2)
            assert [(v.shape, v.dtype) for v in views] == [((16, 3, 24, 24), torch.float32)] * 2, (engine, preset)
            assert all(0 <= float(v.min()) and float(v.max()) <= 1 for v in views)
    spec = "vflip(p=1)+rcrop(0)+erasing(p=0)"  # a crop of the whole image, no erasing: deterministic
    assert_float_close(run("kornia", spec, photo_batch[:, :, :24, :24], size=24)[0],
                       run("augpipe", spec, photo_batch[:, :, :24, :24], size=24)[0])
