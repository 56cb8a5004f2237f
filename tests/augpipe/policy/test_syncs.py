"""The GPU hot path never reads back to the host: counted on the CPU with a dispatch-mode counter.

On CUDA each of these ops (nonzero, item, is_nonzero, equal, masked_select, unique...) blocks the
host until the device queue drains; `augpipe.diagnostics` sees the same aten calls on CPU tensors.
"""
import pytest
import torch

from augpipe import build_policy, list_policies
from augpipe.diagnostics import count_ops
from tests.tolerance import assert_float_close

SPECS = list_policies() + [
    "rrc(scale=0.2:1)+flip+jitter(0.4,0.4,0.4,0.1,p=0.8)+gray(p=0.2)+noise(std=0.05:0.1,p=0.5)",
    "crop | crop+solarize(p=0.3)+blur(p=0.7)",
    "jitter(0.4,0,0.2,0,p=0.5)+rrc(p=0.5)",
]
# every op of torchvision's recipes (augpipe/ops/), gated and ungated, in two chains
RECIPE_SPECS = [
    "rcrop(4,mode=reflect)+vflip+invert(p=0.3)+channel_permutation(p=0.5)+posterize(bits=2:6)"
    "+sharpness(factor=0:2)+autocontrast+erasing(p=0.7)+equalize(p=0.6)",
    "center_crop+rcrop(2,mode=symmetric,pad_if_needed=true)+erasing(p=0.5,value=random)+rcrop(1,mode=edge)",
    "rrc+affine(degrees=-20:20,translate_x=0.1,translate_y=0.2,scale=0.8:1.2,shear_x=-5:5,p=0.7)"
    "+rotate(degrees=-30:30,mode=bilinear,fill=0.5,p=0.5)+perspective(0.4,mode=nearest,p=0.6)",
    "rrc+flip+trivial_augment(p=0.9) | rrc+rand_augment(2,9,mode=bilinear,fill=0.5)+erasing(p=0.25)",
    "auto_augment(imagenet,p=0.9)+perspective(fill=0.5) | auto_augment(svhn,mode=bilinear,fill=0.2)",
    # the antialiased crop and resize, and a resize with a size of its own before a crop
    "rrc(scale=0.05:0.5,antialias=true)+flip",
    "resize(side=36,antialias=true)+center_crop+flip",
]


def _inputs(kind):
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (24, 3, 40, 40), dtype=torch.uint8, generator=g)
    return x if kind == "uint8" else x.float() / 255


@pytest.mark.parametrize("kind", ["uint8", "float"])
@pytest.mark.parametrize("spec, views", [(s, 2) for s in SPECS + RECIPE_SPECS] + [("simclr", "2x32+4x16@0.05:0.14"),
                                                                 ("byol", "2x24+2x12@0.1:0.3")])
def test_blend_gating_makes_no_host_read(spec, views, kind):
    policy = build_policy(spec, size=32, views=views, gating="blend", normalize="imagenet")
    images, g = _inputs(kind), torch.Generator().manual_seed(0)
    policy(images, generator=g)  # one-time setup (constants) outside the count
    counts = count_ops(lambda: policy(images, generator=g))
    assert counts.syncs == {}, counts.syncs
    assert counts.ops > 0


def test_subset_gating_does_read_back_on_cpu():
    """The counter sees the syncs when they are there (the CPU default uses them on purpose)."""
    policy = build_policy("simclr", size=32, gating="subset")
    images = _inputs("uint8")
    policy(images)
    assert count_ops(lambda: policy(images)).sync_count > 0


def test_simclr_two_views_fits_the_kernel_budget():
    """<= 250 aten compute ops (kernel launches on CUDA) for one simclr call at 32 px, batch 256."""
    policy = build_policy("simclr", size=32, views=2, gating="blend")
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    policy(images, generator=g)
    counts = count_ops(lambda: policy(images, generator=g))
    assert counts.ops <= 250, counts.by_name.most_common(12)


@pytest.mark.parametrize("spec", list_policies() + SPECS[-3:] + RECIPE_SPECS)
@pytest.mark.parametrize("views", [2, "2x32+3x16@0.05:0.3"])
def test_blend_and_subset_give_the_same_views_for_the_same_params(spec, views, photo_batch):
    if views != 2 and "rrc" not in build_policy(spec, size=32).spec:
        pytest.skip("multi-crop scales need a crop")
    blend = build_policy(spec, size=32, views=views, gating="blend")
    subset = build_policy(spec, size=32, views=views, gating="subset")
    params = blend.sample(photo_batch, generator=torch.Generator().manual_seed(11))
    for a, b in zip(blend.apply(photo_batch, params), subset.apply(photo_batch, params)):
        assert_float_close(a, b)


@pytest.mark.parametrize("spec", ["simclr", "byol", "timm-ra", "trivialaugment", "cifar-aa"])
def test_blend_and_subset_agree_where_the_cpu_path_loops_over_rows(spec, photo_batch):
    """From 80 x 80 px the CPU path crops, translates, erases and writes rows back sample by
    sample (augpipe/functional/_rows.py): the same views as the blend path, where thresholds (solarize,
    posterize, equalize) would turn any rounding difference into a visible one."""
    large = torch.nn.functional.interpolate(photo_batch, size=112, mode="bilinear").clamp_(0, 1)
    blend = build_policy(spec, size=96, gating="blend")
    subset = build_policy(spec, size=96, gating="subset")
    params = blend.sample(large, generator=torch.Generator().manual_seed(12))
    for a, b in zip(blend.apply(large, params), subset.apply(large, params)):
        assert_float_close(a, b)


def test_call_is_sample_then_apply(photo_batch):
    policy = build_policy("byol", size=32)
    views, params = policy(photo_batch, generator=torch.Generator().manual_seed(4), return_params=True)
    again = policy.apply(photo_batch, policy.sample(photo_batch, generator=torch.Generator().manual_seed(4)))
    for a, b in zip(views, again):
        assert torch.equal(a, b)
    assert [p["op"] for p in params[1]] == [op.name for op in policy.views[1].ops]


def test_auto_gating_follows_the_device():
    policy = build_policy("simclr", size=32)
    assert policy.gating_for(torch.device("cpu")) == "subset"
    assert policy.gating_for(torch.device("cuda")) == "blend"
    assert build_policy("simclr", size=32, compile=True).gating_for(torch.device("cpu")) == "blend"
    with pytest.raises(ValueError, match="gating must be one of auto, blend, subset"):
        build_policy("simclr", size=32, gating="mask")


def test_float_range_is_checked_without_a_host_read():
    policy = build_policy("crop", size=8, gating="blend")
    bad = torch.rand(4, 3, 8, 8)
    bad[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="no NaN"):
        policy(bad)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        policy(bad.nan_to_num(2.0))


class _CountingAccount:
    """Stands in for the loop's TimeAccount: counts every aten call from an epoch's first
    augment phase until the epoch reads its timings (the steps and their checks; not evaluation,
    nor the DataLoader's one per-epoch draw of its base seed from torch's host generator, made
    when the first batch is fetched)."""

    windows = []

    def __init__(self, device):
        from _augpipe_shared.timing import TimeAccount
        self._inner, self._counter, self.steps = TimeAccount(device), None, 0

    def phase(self, name):
        from augpipe.diagnostics import count_dispatch
        if self._counter is None and name == "augment":
            self._counter = count_dispatch()
            self._counts = self._counter.__enter__()
        self.steps += name == "augment"
        return self._inner.phase(name)

    @property
    def seconds(self):
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            _CountingAccount.windows.append((self.steps, self._counts.syncs))
            self._counter = None
        return self._inner.seconds


@pytest.mark.slow
@pytest.mark.parametrize("check_every", [1, 3, 50])
def test_training_step_reads_the_host_once_per_check(check_every, tmp_path, monkeypatch):
    """SGD/LARS steps, augpipe with blend gating: the loss read every `check_every` steps and at
    the epoch's end is the only host read (the probe's AdamW is fused: its step counter stays on the device)."""
    import augpipe
    from ssl_train import loop
    from ssl_train.cli import main
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(loop, "TimeAccount", _CountingAccount)
    real_build = augpipe.build_policy
    monkeypatch.setattr(augpipe, "build_policy", lambda *a, **k: real_build(*a, **{**k, "gating": "blend"}))
    _CountingAccount.windows = []
    assert main(["--data", "digits", "--image-size", "16", "--batch-size", "128", "--proj-hidden", "32",
                 "--train-subset", "768", "--test-subset", "200",
                 "--proj-dim", "16", "--num-workers", "0", "--no-progress", "--knn-k", "5", "--epochs", "1",
                 "--optimizer", "lars", "--check-every", str(check_every), "--out", str(tmp_path / "run")]) == 0
    (steps, syncs), = [w for w in _CountingAccount.windows if w[0]]
    expected = -(-steps // check_every)  # every check_every steps, and the last step
    assert steps >= 5 and syncs == {"_local_scalar_dense": expected}, (steps, syncs)
