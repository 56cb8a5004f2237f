"""Sampled parameters follow the declared distributions and are drawn per sample."""
import math

import pytest
import torch
from torchvision import transforms

from augpipe import build_policy, sampling

N = 20000
CPU = torch.device("cpu")


def test_resized_crop_boxes_follow_torchvision_distribution(gen):
    h, w, scale, ratio = 48, 64, (0.08, 1.0), (3 / 4, 4 / 3)
    boxes = sampling.resized_crop_boxes(N, h, w, scale, ratio, gen, CPU).double()
    top, left, bh, bw = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
    torch.manual_seed(0)
    ref = torch.tensor([transforms.RandomResizedCrop.get_params(torch.empty(3, h, w), list(scale), list(ratio))
                        for _ in range(4000)]).double()
    for ours, theirs in [(bh * bw / (h * w), ref[:, 2] * ref[:, 3] / (h * w)),
                         (torch.log(bw / bh), torch.log(ref[:, 3] / ref[:, 2])),
                         (top / h, ref[:, 0] / h)]:
        for q in (0.1, 0.5, 0.9):
            assert abs(torch.quantile(ours, q) - torch.quantile(theirs, q)) < 0.03, q


def test_resized_crop_fallback_is_central_crop():
    # scale > achievable area for this ratio range: no try fits, so the central fallback is used
    boxes = sampling.resized_crop_boxes(100, 10, 40, (0.9, 1.0), (1.0, 1.0), torch.Generator().manual_seed(0), CPU)
    assert (boxes == torch.tensor([0, 15, 10, 10])).all()


def test_uniform_bernoulli_permutations(gen):
    u = sampling.uniform(N, 0.6, 1.4, gen, CPU)
    assert 0.6 <= u.min() and u.max() <= 1.4
    assert abs(u.mean() - 1.0) < 0.01 and abs(u.var() - 0.8 ** 2 / 12) < 0.003
    coin = sampling.bernoulli(N, 0.2, gen, CPU)
    assert abs(coin.float().mean() - 0.2) < 0.015
    perms = sampling.permutations(N, 4, gen, CPU)
    assert (perms.sort(dim=1).values == torch.arange(4)).all()
    position_freq = torch.stack([(perms == j).float().mean(0) for j in range(4)])
    assert (position_freq - 0.25).abs().max() < 0.02


def test_policy_parameters_are_per_sample_and_follow_spec(gen):
    policy = build_policy("rrc(scale=0.2:1)+flip+jitter(0.4,0.3,0.2,0.1,p=0.8)+gray(p=0.2)"
                          "+blur(sigma=0.1:2,p=0.5)+noise(std=0.05:0.2)", size=16, views=1)
    images = torch.full((4000, 3, 16, 16), 128, dtype=torch.uint8)
    _, params = policy(images, generator=gen, return_params=True)
    p = {d["op"]: d for d in params[0]}
    for op, rate in [("flip", 0.5), ("jitter", 0.8), ("gray", 0.2), ("blur", 0.5)]:
        assert abs(p[op]["apply"].float().mean() - rate) < 0.03, op
    f = p["jitter"]["factors"]
    for j, (lo, hi) in enumerate([(0.6, 1.4), (0.7, 1.3), (0.8, 1.2), (-0.1, 0.1)]):
        assert lo <= f[:, j].min() and f[:, j].max() <= hi
        assert abs(f[:, j].mean() - (lo + hi) / 2) < 0.01
        assert f[:, j].unique().numel() > 3900  # one draw per sample, not per batch
    area = p["rrc"]["boxes"][:, 2:].prod(1) / 256
    assert area.min() >= 0.15 and area.unique().numel() > 20
    assert 0.1 <= p["blur"]["sigma"].min() and p["blur"]["sigma"].max() <= 2.0
    std = p["noise"]["std"]
    assert 0.05 <= std.min() and std.max() <= 0.2 and abs(std.mean() - 0.125) < 0.005


def test_noise_has_declared_per_sample_std(gen):
    # mid-gray images, std small enough that clipping at 0 and 1 is negligible (5 sigma)
    policy = build_policy("noise(std=0.02:0.09)", size=32, views=1)
    images = torch.full((256, 3, 32, 32), 0.5)
    (view,), params = policy(images, generator=gen, return_params=True)
    declared = params[0][1]["std"]
    measured = (view - images).flatten(1).std(dim=1)
    assert torch.allclose(measured, declared, rtol=0.05)
    assert measured.std() > 0.01  # really one std per sample


def test_noise_views_are_independent(gen):
    policy = build_policy("noise", size=32)
    images = torch.full((64, 3, 32, 32), 0.5)
    a, b = policy(images, generator=gen)
    d = (a - b).flatten(1)
    corr = torch.corrcoef(torch.stack([(a - 0.5).flatten(), (b - 0.5).flatten()]))[0, 1]
    assert abs(corr) < 0.02
    assert math.isclose(d.std().item(), math.sqrt(2) * 0.1, rel_tol=0.03)


def test_full_boxes_are_the_whole_image_as_int_boxes():
    boxes = sampling.full_boxes(3, 20, 30, torch.device("cpu"))
    assert boxes.dtype == torch.int64 and boxes.device.type == "cpu"
    assert boxes.tolist() == [[0, 0, 20, 30]] * 3  # (top, left, height, width)


def test_every_draw_comes_from_the_given_generator():
    """Two generators with the same seed give the same draws, whatever torch's global RNG does."""
    def draws(seed, global_seed):
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(global_seed)
        cpu = torch.device("cpu")
        return (sampling.normal((3, 2), g, cpu), sampling.permutations(5, 4, g, cpu),
                sampling.uniform(6, 0.0, 1.0, g, cpu), sampling.bernoulli(40, 0.5, g, cpu),
                sampling.resized_crop_boxes(6, 32, 24, (0.08, 1.0), (3 / 4, 4 / 3), g, cpu))
    for a, b in zip(draws(1, global_seed=5), draws(1, global_seed=6)):  # the global RNG differs
        assert torch.equal(a, b)
    for a, b in zip(draws(1, global_seed=5), draws(2, global_seed=5)):
        assert not torch.equal(a, b)


def test_crop_area_follows_the_scale_range():
    """Box areas are U(scale) of the image when the boxes fit: a narrow range near 1 pins the
    range's width (scale[1] - scale[0]) and the fallback rate."""
    g = torch.Generator().manual_seed(0)
    boxes = sampling.resized_crop_boxes(20000, 100, 100, (0.9, 1.0), (1.0, 1.0), g, torch.device("cpu"))
    area = (boxes[:, 2] * boxes[:, 3]).double() / 10000
    assert abs(area.mean().item() - 0.95) < 0.005 and area.min() >= 0.88 and area.max() <= 1.0


def test_draws_land_on_the_asked_device_with_their_dtypes():
    """The meta device stands in for CUDA here: every draw must be made on (or moved to) the
    device asked for, never left on the CPU (a CPU tensor in a CUDA graph is a copy and a sync)."""
    meta = torch.device("meta")
    for p in (0.0, 0.5, 1.0):
        flips = sampling.bernoulli(7, p, None, meta)
        assert flips.device == meta and flips.dtype == torch.bool and flips.shape == (7,)
    u = sampling.uniform(4, 0.2, 0.3, None, meta)
    assert u.device == meta and u.shape == (4,)
    assert sampling.normal((2, 3), None, meta).device == meta
    assert sampling.permutations(3, 4, None, meta).device == meta
    assert sampling.full_boxes(2, 5, 6, meta).device == meta


def test_certain_coins_draw_nothing():
    """p = 0 and p = 1 are decided without a draw: the generator's stream stays where it was."""
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert sampling.bernoulli(5, 1.0, g, torch.device("cpu")).tolist() == [True] * 5
    assert sampling.bernoulli(5, 0.0, g, torch.device("cpu")).tolist() == [False] * 5
    assert torch.equal(g.get_state(), state)
    draws = sampling.bernoulli(20000, 0.3, g, torch.device("cpu"))
    assert abs(draws.float().mean().item() - 0.3) < 0.015


@pytest.mark.parametrize("height, width", [(20, 100), (100, 20), (40, 40), (30, 37)])
def test_crop_fallback_is_torchvisions_central_crop(height, width):
    """No candidate fits (areas above the image's): every sample gets torchvision's fallback,
    the central crop clamped to the ratio range."""
    g = torch.Generator().manual_seed(0)
    boxes = sampling.resized_crop_boxes(4, height, width, (2.0, 3.0), (3 / 4, 4 / 3), g, torch.device("cpu"))
    img = torch.zeros(3, height, width)
    expected = list(transforms.RandomResizedCrop.get_params(img, [2.0, 3.0], [3 / 4, 4 / 3]))
    assert boxes.dtype == torch.int64 and boxes.tolist() == [expected] * 4


def test_crop_boxes_lie_inside_and_positions_cover_the_range():
    g = torch.Generator().manual_seed(1)
    height, width = 30, 50
    # a fixed square box (scale and ratio pinned): only the position is random
    boxes = sampling.resized_crop_boxes(4000, height, width, (0.24, 0.24), (1.0, 1.0), g, torch.device("cpu"))
    top, left, h, w = boxes.T
    assert (h == 19).all() and (w == 19).all()           # round(sqrt(0.24 * 1500)) = 19
    assert top.min() == 0 and top.max() == height - 19 and left.min() == 0 and left.max() == width - 19
    assert abs(top.float().mean().item() - (height - 19) / 2) < 0.3    # uniform over 0..H-h
    assert abs(left.float().mean().item() - (width - 19) / 2) < 0.5
    assert not torch.equal(top, left[: len(top)].clamp(max=height - 19))  # two independent draws
    boxes = sampling.resized_crop_boxes(4000, height, width, (0.08, 1.0), (3 / 4, 4 / 3), g, torch.device("cpu"))
    top, left, h, w = boxes.T
    assert (h >= 1).all() and (w >= 1).all() and (top + h <= height).all() and (left + w <= width).all()
    assert (top >= 0).all() and (left >= 0).all()


@pytest.fixture
def cuda_like_draws(monkeypatch):
    """torch.rand/randn that refuse a generator from another device, as CUDA does, under a default
    device that is not the CPU: a CPU-only machine then sees the mistakes a GPU would raise on
    (drawing on the target device with a CPU generator, or on the default device)."""
    def strict(real):
        def draw(shape, *, generator=None, device=None, dtype=None):
            where = torch.device(device) if device is not None else torch.get_default_device()
            if generator is not None and generator.device != where:
                raise RuntimeError(f"a {generator.device} generator cannot draw on {where}")
            return real(shape, generator=generator, device=where, dtype=dtype)
        return draw
    monkeypatch.setattr(torch, "rand", strict(torch.rand))
    monkeypatch.setattr(torch, "randn", strict(torch.randn))
    with torch.device("meta"):
        yield


def test_a_generator_draws_on_its_own_device_and_results_move_to_the_asked_one(cuda_like_draws):
    g, meta = torch.Generator().manual_seed(0), torch.device("meta")
    draws = {"uniform": sampling.uniform(4, 0.2, 0.3, g, meta), "bernoulli": sampling.bernoulli(4, 0.5, g, meta),
             "permutations": sampling.permutations(3, 4, g, meta), "normal": sampling.normal((2, 3), g, meta),
             "boxes": sampling.resized_crop_boxes(5, 8, 8, (0.1, 1.0), (0.75, 1.33), g, meta)}
    for name, tensor in draws.items():
        assert tensor.device == meta, name
    assert draws["boxes"].dtype == torch.int64 and draws["boxes"].shape == (5, 4)
    assert draws["bernoulli"].dtype == torch.bool and draws["permutations"].dtype == torch.int64


def _torchvision_loop_boxes(n, height, width, scale, ratio, seed):
    """RandomResizedCrop.get_params written out per sample (torchvision's loop), fed the uniforms
    our sampler documents drawing: [n, 10, 2] (area, log-ratio), then [n, 2] (top, left), float64."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 10, 2, generator=g, dtype=torch.float64).tolist()
    pos = torch.rand(n, 2, generator=g, dtype=torch.float64).tolist()
    boxes = []
    for i in range(n):
        for area_u, ratio_u in u[i]:
            target = height * width * (scale[0] + (scale[1] - scale[0]) * area_u)
            aspect = math.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * ratio_u)
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                boxes.append([math.floor(pos[i][0] * (height - h + 1)), math.floor(pos[i][1] * (width - w + 1)), h, w])
                break
        else:
            boxes.append(list(transforms.RandomResizedCrop.get_params(torch.empty(1, height, width), [9.0, 9.5],
                                                                      list(ratio))))
    return boxes


@pytest.mark.parametrize("height, width, scale, ratio", [
    (32, 32, (0.08, 1.0), (3 / 4, 4 / 3)),
    (48, 20, (0.2, 1.0), (3 / 4, 4 / 3)),
    (16, 16, (0.0005, 0.01), (3 / 4, 4 / 3)),  # boxes of 0 and 1 px: zero is refused, one is kept
    (20, 40, (0.8, 1.0), (0.5, 2.0)),          # many samples fall back, the others do not
])
def test_crop_boxes_replay_torchvisions_loop_exactly(height, width, scale, ratio):
    ours = sampling.resized_crop_boxes(300, height, width, scale, ratio, torch.Generator().manual_seed(3), CPU)
    expected = _torchvision_loop_boxes(300, height, width, scale, ratio, seed=3)
    assert ours.tolist() == expected


def test_the_replay_cases_reach_every_branch():
    """The cases above are only worth something if they contain fallbacks, 1-px sides and zero-size tries."""
    tiny = _torchvision_loop_boxes(300, 16, 16, (0.0005, 0.01), (3 / 4, 4 / 3), seed=3)
    assert any(b[2] == 1 or b[3] == 1 for b in tiny)
    u = torch.rand(300, 10, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    first_area = 256 * (0.0005 + 0.0095 * u[:, 0, 0])
    first_aspect = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[:, 0, 1])
    zero_sided = (torch.round(torch.sqrt(first_area * first_aspect)) == 0) | \
                 (torch.round(torch.sqrt(first_area / first_aspect)) == 0)
    assert zero_sided.sum() > 10  # first tries the sampler must refuse
    wide = _torchvision_loop_boxes(300, 20, 40, (0.8, 1.0), (0.5, 2.0), seed=3)
    fallback = list(sampling.fallback_box(20, 40, (0.5, 2.0)))
    assert 0 < sum(b == fallback for b in wide) < 300


@pytest.mark.parametrize("height, width", [(20, 100), (100, 20), (40, 40), (30, 37), (31, 100), (100, 33), (9, 12)])
def test_fallback_box_is_torchvisions_in_python_ints(height, width):
    box = sampling.fallback_box(height, width, (3 / 4, 4 / 3))
    expected = transforms.RandomResizedCrop.get_params(torch.empty(1, height, width), [2.0, 3.0], [3 / 4, 4 / 3])
    assert box == tuple(expected) and all(type(v) is int for v in box)


def test_a_coin_is_true_strictly_below_p():
    """P(u < p) = p for u on [0, 1): a draw equal to p is False (u <= p would add one grid step)."""
    u = torch.rand(50, generator=torch.Generator().manual_seed(4))
    flips = sampling.bernoulli(50, float(u[7]), torch.Generator().manual_seed(4), CPU)
    assert torch.equal(flips, u < u[7]) and not flips[7]
