"""The policy runtime (augpipe/policy): Policy.__call__ on any input, reproducibility, output formats,
timing, chunks, threads and reused outputs."""
import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from augpipe import build_policy, list_policies
from tests.tolerance import assert_float_close


@pytest.mark.parametrize("name", list_policies())
def test_every_preset_gives_float_views_in_range(name, photo_batch, gen):
    views = build_policy(name, size=32, views=2)(photo_batch, generator=gen)
    assert len(views) == 2
    for v in views:
        assert v.shape == (16, 3, 32, 32) and v.dtype == torch.float32
        assert 0 <= v.min() and v.max() <= 1


def test_same_seed_same_views_other_seed_other_views(photo_batch):
    policy = build_policy("simclr", size=32)
    a = policy(photo_batch, generator=torch.Generator().manual_seed(5))
    b = policy(photo_batch, generator=torch.Generator().manual_seed(5))
    c = policy(photo_batch, generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_identical_images_get_different_views(gen):
    same = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=gen).expand(32, -1, -1, -1)
    (view,) = build_policy("simclr", size=32, views=1)(same, generator=gen)
    distinct = {tuple(v.flatten()[:64].tolist()) for v in view}
    assert len(distinct) > 28  # per-sample parameters: not one draw for the batch


def test_uint8_and_float_inputs_agree(photo_batch):
    policy = build_policy("crop-gray", size=24)
    a = policy(photo_batch, generator=torch.Generator().manual_seed(0))
    b = policy(photo_batch.float() / 255, generator=torch.Generator().manual_seed(0))
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


def _random_order(size):
    import torchvision.transforms.v2 as T

    from augpipe import from_torchvision
    return from_torchvision(T.RandomOrder([T.RandomHorizontalFlip(), T.RandomSolarize(0.5, p=1.0),
                                           T.RandomInvert(p=1.0)]), size=size)


@pytest.mark.parametrize("spec", ["simclr", "noise", "trivial_augment", "auto_augment(policy=cifar10)",
                                  "rand_augment(num_ops=3)", "random order"])
def test_input_is_not_modified(photo_batch, spec):
    """Float input reaches the ops as it is (no conversion copy): every kernel, and every per-sample
    op choice that writes its rows back in place (first in the chain: nothing copied before it),
    must leave the caller's tensor alone."""
    images = photo_batch.float() / 255
    before = images.clone()
    size = tuple(images.shape[-2:])
    policy = _random_order(size) if spec == "random order" else build_policy(spec, size=size, views=1)
    policy(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, before)


@pytest.mark.parametrize("bad, message", [
    (torch.rand(4, 3, 8, 8) * 255, "in \\[0, 1\\]"),
    (torch.rand(3, 8, 8), "rank 3"),
    (torch.rand(4, 1, 8, 8), "3 channels"),
    (torch.zeros(4, 3, 8, 8, dtype=torch.int32), "uint8"),
    (torch.rand(4, 3, 8, 8) - 0.5, "in \\[0, 1\\]"),
    (torch.zeros(4, 3, 0, 0, dtype=torch.uint8), "at least 1x1 pixels, got shape \\(4, 3, 0, 0\\)"),
])
def test_bad_inputs_are_rejected_clearly(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build_policy("crop", size=8)(bad)


@pytest.mark.parametrize("gating", ["subset", "blend"])
def test_an_empty_batch_gives_empty_views_and_a_numpy_batch_a_one_line_error(gating):
    policy = build_policy("timm-ra", size=16, views="2x16+2x8@0.1:0.5", gating=gating, dtype="bfloat16")
    views = policy(torch.zeros(0, 3, 20, 20, dtype=torch.uint8))
    assert [(tuple(v.shape), v.dtype) for v in views] == [((0, 3, 16, 16), torch.bfloat16)] * 2 + \
        [((0, 3, 8, 8), torch.bfloat16)] * 2
    with pytest.raises(TypeError, match="got ndarray \\(a numpy array \\[N,H,W,3\\]: torch.from_numpy"):
        policy(np.zeros((2, 20, 20, 3), dtype=np.uint8))


def test_output_dtype_and_channels_last(photo_batch):
    views = build_policy("crop", size=32, dtype="bf16", channels_last=True)(photo_batch)
    assert views[0].dtype == torch.bfloat16 and views[0].is_contiguous(memory_format=torch.channels_last)
    normalized = build_policy("none", size=48, normalize="imagenet")(photo_batch)[0]
    expected = TF.normalize(photo_batch.float() / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert_float_close(normalized, expected)


def test_op_timing_is_opt_in_and_names_ops(photo_batch):
    policy = build_policy("simclr", size=32, time_ops=True)
    policy(photo_batch)
    seconds = policy.op_seconds()
    assert set(seconds) == {"rrc+flip", "jitter", "gray", "blur"}  # a crop then a flip run as one kernel
    assert all(s >= 0 for s in seconds.values())
    assert build_policy("simclr", size=32).op_seconds() == {}


def _reference_view(img, ops, params, i, size):
    """Apply torchvision functional ops with the policy's sampled params for sample i."""
    x = img.float() / 255
    for spec_op, p in zip(ops, params):
        op = p["op"]
        if op in ("rrc", "resize"):
            x = TF.resized_crop(x, *p["boxes"][i].tolist(), list(size), antialias=False)
        elif not p["apply"][i]:
            continue
        elif op == "flip":
            x = TF.horizontal_flip(x)
        elif op == "jitter":
            fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
            for j in p["order"][i].tolist():
                x = fns[j](x, float(p["factors"][i, j]))
        elif op == "gray":
            x = TF.rgb_to_grayscale(x, num_output_channels=3)
        elif op == "blur":
            s = float(p["sigma"][i])
            x = TF.gaussian_blur(x, [3, 3], [s, s])
        elif op == "solarize":
            x = TF.solarize(x, spec_op.threshold)
    return x


@pytest.mark.parametrize("name", ["simclr", "byol"])
def test_views_equal_torchvision_replay_of_their_params(name, photo_batch, gen):
    """End to end: every view equals torchvision's functional ops replayed with the same params."""
    policy = build_policy(name, size=32)
    views, params = policy(photo_batch, generator=gen, return_params=True)
    for v, view_params in enumerate(params):
        ops = policy.views[v].ops
        ref = torch.stack([_reference_view(img, ops, view_params, i, (32, 32)) for i, img in enumerate(photo_batch)])
        assert_float_close(views[v], ref, extent=max(views[v].shape[-2:]))


def test_an_output_batch_is_reused_only_when_no_view_of_it_is_held(photo_batch):
    """The CPU path keeps its output batch and writes the next call into it only when every view
    handed out is gone: a held view (or a view of a view) keeps its values."""
    policy = build_policy("trivialaugment", size=48, views=2)
    g = torch.Generator().manual_seed(0)
    views = policy(photo_batch, generator=g)
    first_memory, kept = views[0].data_ptr(), [v.clone() for v in views]
    part = views[1][:2, :1]  # a view of a view, still held
    del views
    again = policy(photo_batch, generator=g)
    assert again[0].data_ptr() != first_memory and torch.equal(part, kept[1][:2, :1])  # not reused
    del part
    memory = again[0].data_ptr()
    del again
    third = policy(photo_batch, generator=g)
    assert third[0].data_ptr() in (first_memory, memory)  # nothing held: a kept batch reused, no fresh pages
    assert not torch.equal(third[0], kept[0])  # new values were written


def test_cpu_chunking_changes_no_result(photo_batch, monkeypatch):
    """Kernels run on cache-sized chunks of rows on CPU; parameters are drawn for the whole batch
    first, so the views are the same as in one pass (noise aside: its draw is seeded per chunk)."""
    from augpipe.policy import _chunking as chunking
    policy = build_policy("byol", size=40)
    whole = policy(photo_batch, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(chunking, "CPU_CHUNK_BYTES", 3 * 48 * 48 * 4 * 3)  # 3 rows per chunk
    assert chunking.chunk_rows(photo_batch) == 3
    chunked = policy(photo_batch, generator=torch.Generator().manual_seed(1))
    for a, b in zip(whole, chunked):
        assert_float_close(a, b)
    noisy = build_policy("noise", size=48)(photo_batch, generator=torch.Generator().manual_seed(1))[0]
    first, second = noisy[0:3] - photo_batch[0:3] / 255, noisy[3:6] - photo_batch[3:6] / 255
    assert not torch.allclose(first, second, atol=1e-3)  # chunks draw different noise


def test_thread_chooser_follows_the_faster_setting_and_backs_off(monkeypatch):
    """Synthetic speeds: all threads fast while quiet, one thread fast under load."""
    from augpipe.policy._chunking import ThreadChooser
    current = {"n": 4}
    monkeypatch.setattr(torch, "get_num_threads", lambda: current["n"])
    monkeypatch.setattr(torch, "set_num_threads", lambda n: current.update(n=n))
    chooser = ThreadChooser(explore_every=4, max_interval=16)
    speed = {4: 100.0, 1: 60.0}                      # quiet
    picks = []
    for i in range(40):
        t = chooser.choose()
        picks.append(t)
        chooser.record(t, 1.0 if i == 0 else speed[t])  # a slow first call (compiling) is a warm-up
    assert picks[:4] == [4, 4, 1, 1] and picks.count(4) > 30 and current["n"] == 4
    tries = [i for i, t in enumerate(picks[4:], 4) if t == 1]
    assert all(b - a > 4 for a, b in zip(tries, tries[1:]))  # losing tries come less and less often
    speed = {4: 20.0, 1: 50.0}                       # other processes took the cores
    picks = []
    for _ in range(40):
        t = chooser.choose()
        picks.append(t)
        chooser.record(t, speed[t])
    assert picks[-20:].count(1) >= 18 and picks[-1] == 1 and current["n"] == 1
    assert chooser.choose() in (1, 4) and chooser.most == 4  # never more than torch had


def test_cpu_threads_keep_leaves_torch_alone(photo_batch):
    before = torch.get_num_threads()
    policy = build_policy("simclr", size=32, cpu_threads="keep")
    for _ in range(3):
        policy(photo_batch)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="cpu_threads must be 'adapt' or 'keep'"):
        build_policy("simclr", size=32, cpu_threads="all")


def test_views_do_not_depend_on_the_thread_count():
    """Why adapting the thread count is safe for the views: every kernel is elementwise or reduces
    within a row, so 1 and 2 threads give the same bits."""
    x = torch.randint(0, 256, (64, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    before = torch.get_num_threads()
    for spec in ("simclr", "byol", "noise"):
        policy = build_policy(spec, size=32, cpu_threads="keep")
        params = policy.sample(x, generator=torch.Generator().manual_seed(1))
        try:
            torch.set_num_threads(2)
            a = policy.apply(x, params)
            torch.set_num_threads(1)
            b = policy.apply(x, params)
        finally:
            torch.set_num_threads(before)
        assert all(torch.equal(u, v) for u, v in zip(a, b)), spec


def test_group_parameters_are_joined_without_a_copy():
    from augpipe.policy._grouping import join_rows as _join
    base = torch.arange(24.0).view(6, 4).clone()  # a tensor of its own, as sample draws them
    parts = [base[0:3], base[3:6]]
    assert _join(parts) is base                       # the slices sample handed out: no copy
    swapped = _join([base[3:6], base[0:3]])           # not in order: a real concatenation
    assert swapped is not base and torch.equal(swapped, torch.cat([base[3:6], base[0:3]]))
    other = [base[0:3], torch.zeros(3, 4)]
    assert torch.equal(_join(other), torch.cat(other))
