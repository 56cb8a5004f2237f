"""The ops of torchvision's recipes (augpipe/ops/): each kernel equals torchvision's
functional op for the same parameters, each sampler follows torchvision's distribution."""
import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from augpipe import build_policy, functional, sampling
from tests.tolerance import assert_float_close

ATOL = 1e-5


@pytest.fixture
def x():
    return torch.rand(6, 3, 13, 17, generator=torch.Generator().manual_seed(0))


def per_sample(fn, images, *params):
    return torch.stack([fn(img, *(p[i] for p in params)) for i, img in enumerate(images)])


def test_flips_invert_and_channel_permutation_match_torchvision(x):
    torch.testing.assert_close(functional.vflip(x), TF.vertical_flip(x), atol=0, rtol=0)
    torch.testing.assert_close(functional.invert(x), TF.invert(x), atol=0, rtol=0)
    order = sampling.permutations(6, 3, torch.Generator().manual_seed(1), torch.device("cpu"))
    ref = per_sample(lambda img, o: TF.permute_channels(img, o.tolist()), x, order)
    torch.testing.assert_close(functional.permute_channels(x, order), ref, atol=0, rtol=0)


def test_posterize_sharpness_autocontrast_match_torchvision(x):
    bits = torch.tensor([0., 1., 3., 4., 7., 8.])
    ref = per_sample(lambda img, b: TF.posterize(img, int(b)), x, bits)
    torch.testing.assert_close(functional.posterize(x, bits), ref, atol=ATOL, rtol=0)
    factor = torch.tensor([0.0, 0.5, 1.0, 1.7, 2.0, 3.5])
    ref = per_sample(lambda img, f: TF.adjust_sharpness(img, float(f)), x, factor)
    torch.testing.assert_close(functional.adjust_sharpness(x, factor), ref, atol=ATOL, rtol=0)
    flat = x.clone()
    flat[2, 1] = 0.25  # a flat channel stays as it is
    torch.testing.assert_close(functional.autocontrast(flat), TF.autocontrast(flat), atol=ATOL, rtol=0)


def test_erase_matches_torchvision_per_box(x):
    boxes = torch.tensor([[0, 0, 13, 17], [2, 3, 4, 5], [12, 16, 1, 1], [5, 0, 0, 7], [1, 1, 11, 2], [0, 9, 3, 8]])
    values = torch.randn(6, 3, 13, 17, generator=torch.Generator().manual_seed(2))
    ref = torch.stack([TF.erase(img, *b.tolist(), v[:, b[0]:b[0] + b[2], b[1]:b[1] + b[3]])
                       for img, b, v in zip(x, boxes, values)])
    torch.testing.assert_close(functional.erase(x, boxes, values), ref, atol=0, rtol=0)
    # the CPU path's box-by-box kernel: the same pixels, per-pixel values or one colour for all
    torch.testing.assert_close(functional.erase_rows(x, boxes, values), ref, atol=0, rtol=0)
    colour = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    assert torch.equal(functional.erase_rows(x, boxes, colour), functional.erase(x, boxes, colour))
    before = x.clone()
    functional.erase_rows(x, boxes, colour)
    assert torch.equal(x, before)  # a copy unless told it may write in place
    inplace = x.clone()
    assert functional.erase_rows(inplace, boxes, colour, inplace=True) is inplace
    assert torch.equal(inplace, functional.erase(x, boxes, colour))


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_and_crop_match_torchvision(mode, x):
    padding = (3, 1, 4, 2) if mode != "reflect" else (3, 1, 4, 2)
    padded = functional.pad(x, padding, mode, fill=0.3)
    torch.testing.assert_close(padded, TF.pad(x, list(padding), fill=0.3, padding_mode=mode), atol=0, rtol=0)
    offsets = torch.tensor([[0, 0], [1, 2], [3, 10], [6, 0], [2, 5], [6, 10]])
    ref = per_sample(lambda img, o: TF.crop(img, int(o[0]), int(o[1]), 10, 14), padded, offsets)
    torch.testing.assert_close(functional.crop(padded, offsets, (10, 14)), ref, atol=0, rtol=0)


@pytest.mark.parametrize("size", [(9, 11), (13, 17), (16, 20), (10, 20)])
def test_center_crop_matches_torchvision_smaller_or_larger(size, x):
    view = build_policy("center_crop", size=size, views=1)(x)[0]
    torch.testing.assert_close(view, TF.center_crop(x, list(size)), atol=0, rtol=0)


def replay_erasing(height, width, scale, ratio, u, pos):
    """torchvision's RandomErasing.make_params, fed the uniforms the sampler documents drawing."""
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for area_u, ratio_u in u.tolist():
        erase_area = height * width * (scale[0] + (scale[1] - scale[0]) * area_u)
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * ratio_u)
        h, w = int(round(math.sqrt(erase_area * aspect))), int(round(math.sqrt(erase_area / aspect)))
        if not (h < height and w < width):
            continue
        return [math.floor(pos[0] * (height - h + 1)), math.floor(pos[1] * (width - w + 1)), h, w], True
    return None, False


@pytest.mark.parametrize("shape, scale", [((13, 17), (0.02, 0.33)), ((8, 8), (0.5, 0.99)), ((40, 6), (0.1, 0.9))])
def test_erasing_boxes_replay_torchvisions_rule(shape, scale):
    n, ratio = 300, (0.3, 3.3)
    boxes, found = sampling.erasing_boxes(n, *shape, scale, ratio, torch.Generator().manual_seed(5), torch.device("cpu"))
    g = torch.Generator().manual_seed(5)
    u = torch.rand(n, 10, 2, generator=g, dtype=torch.float64)
    pos = torch.rand(n, 2, generator=g, dtype=torch.float64)
    misses = 0
    for i in range(n):
        box, ok = replay_erasing(*shape, scale, ratio, u[i], pos[i].tolist())
        assert bool(found[i]) == ok
        misses += not ok
        if ok:
            assert boxes[i].tolist() == box
    assert (scale[1] < 0.5) == (misses == 0)  # large boxes do not always fit


def test_erasing_policy_erases_where_the_coin_and_a_box_say(x):
    policy = build_policy("erasing(p=0.5,value=0.1/0.2/0.3)", size=(13, 17), views=1)
    (view,), params = policy(x, generator=torch.Generator().manual_seed(8), return_params=True)
    erasing = params[0][1]
    for img, out, apply, (top, left, h, w) in zip(x, view, erasing["apply"], erasing["boxes"].tolist()):
        if not apply:
            assert h == w == 0 and torch.equal(out, img)
            continue
        patch = out[:, top:top + h, left:left + w]
        assert torch.equal(patch, torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1).expand_as(patch))


def test_random_crop_offsets_cover_every_position_uniformly():
    offsets = sampling.crop_offsets(20000, 40, 40, (32, 32), torch.Generator().manual_seed(0), torch.device("cpu"))
    counts = torch.bincount(offsets[:, 0], minlength=9)
    assert offsets.min() == 0 and offsets.max() == 8 and len(counts) == 9
    assert counts.min() > 20000 / 9 * 0.9 and counts.max() < 20000 / 9 * 1.1


@pytest.mark.parametrize("padding", [(4, 4, 4, 4), (0, 3, 5, 1), (7, 0, 0, 7)])
def test_the_cpu_row_copy_crop_equals_pad_then_gather(padding):
    """`crop_rows` (the CPU kernel for views from 80 x 80 px) against the padded batch cropped by
    gathers (the one for small views and the GPU): every window, borders included."""
    images = torch.rand(40, 3, 9, 11)
    size = (7, 10)
    h, w = 9 + padding[1] + padding[3], 11 + padding[0] + padding[2]
    offsets = sampling.crop_offsets(40, h, w, size, torch.Generator().manual_seed(0), torch.device("cpu"))
    expected = functional.crop(functional.pad(images, padding, "constant", 0.25), offsets, size)
    assert torch.equal(functional.crop_rows(images, offsets, size, padding, 0.25), expected)


def test_cifar_crop_pads_then_crops_like_torchvision_with_the_row_copy():
    big = torch.rand(3, 3, 90, 84)
    policy = build_policy("rcrop(4,fill=0.5)", size=(88, 82), views=1)  # 88 x 82 px: the row copy
    (view,), params = policy(big, generator=torch.Generator().manual_seed(3), return_params=True)
    ref = per_sample(lambda img, o: TF.crop(img, int(o[0]), int(o[1]), 88, 82), TF.pad(big, [4], fill=0.5),
                     params[0][0]["offsets"])
    torch.testing.assert_close(view, ref, atol=0, rtol=0)


def test_cifar_crop_pads_then_crops_like_torchvision(x):
    policy = build_policy("rcrop(4,fill=0.5)", size=(13, 17), views=1)
    (view,), params = policy(x, generator=torch.Generator().manual_seed(3), return_params=True)
    padded = TF.pad(x, [4], fill=0.5)
    ref = per_sample(lambda img, o: TF.crop(img, int(o[0]), int(o[1]), 13, 17), padded, params[0][0]["offsets"])
    torch.testing.assert_close(view, ref, atol=0, rtol=0)
    with pytest.raises(ValueError, match="rcrop: the view \\(20x20\\) is larger than the padded image"):
        build_policy("rcrop(1)", size=20, views=1)(x)
    assert build_policy("rcrop(1,pad_if_needed=true)", size=20, views=1)(x)[0].shape == (6, 3, 20, 20)


def test_posterize_bits_are_whole_and_cover_the_range():
    policy = build_policy("posterize(bits=2:5,p=1)", size=8, views=1)
    _, params = policy(torch.rand(4000, 3, 8, 8), generator=torch.Generator().manual_seed(0), return_params=True)
    bits = params[0][1]["bits"]
    assert set(bits.tolist()) == {2.0, 3.0, 4.0, 5.0}
    assert (torch.bincount(bits.long())[2:] > 900).all()


@pytest.mark.parametrize("spec, message", [
    ("posterize(bits=2.5)", "posterize: bits must be integers"),
    ("posterize(bits=9)", "posterize: bits must satisfy"),
    ("erasing(value=blue)", "erasing: value must be a number"),
    ("rcrop(4,mode=wrap)", "rcrop: mode must be one of"),
    ("sharpness(factor=-1)", "sharpness: factor must satisfy"),
])
def test_bad_values_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        build_policy(spec, size=8)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("fill", [0.0, 0.3])
def test_affine_matches_torchvision_per_sample(mode, fill, x):
    angle = torch.tensor([0., 30., -45., 90., 12.5, 180.])
    tx, ty = torch.tensor([0., 2., -3., 0., 5., 1.]), torch.tensor([0., -1., 4., 0., 2., 0.])
    scale = torch.tensor([1., 0.8, 1.2, 1., 0.9, 1.1])
    shear_x, shear_y = torch.tensor([0., 10., -5., 0., 20., 0.]), torch.tensor([0., 0., 7., 0., -10., 3.])
    matrix = functional.inverse_affine_matrix(angle, tx, ty, scale, shear_x, shear_y)
    ref = torch.stack([TF.affine(img, angle=float(a), translate=[float(u), float(v)], scale=float(s),
                                 shear=[float(p), float(q)], interpolation=TF.InterpolationMode(mode), fill=fill)
                       for img, a, u, v, s, p, q in zip(x, angle, tx, ty, scale, shear_x, shear_y)])
    assert_float_close(functional.affine(x, matrix, mode, fill), ref, extent=max(x.shape[-2:]))


def test_rotate_policy_matches_torchvisions_rotate(x):
    policy = build_policy("rotate(degrees=-90:90,mode=bilinear,fill=0.5)", size=(13, 17), views=1)
    (view,), params = policy(x, generator=torch.Generator().manual_seed(4), return_params=True)
    g = torch.Generator().manual_seed(4)
    sampling.bernoulli(6, 1.0, g, torch.device("cpu"))  # p=1 draws nothing: the angles come first
    angles = sampling.uniform(6, -90, 90, g, torch.device("cpu"))
    ref = torch.stack([TF.rotate(img, float(a), interpolation=TF.InterpolationMode.BILINEAR, fill=0.5)
                       for img, a in zip(x, angles)])
    assert_float_close(view, ref, extent=max(x.shape[-2:]))


def test_affine_parameters_follow_torchvisions_distribution():
    drawn = sampling.affine_params(20000, 30, 40, (-10, 10), (0.1, 0.2), (0.8, 1.2), (-5, 5), (0, 3),
                                   torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(drawn["tx"], drawn["tx"].round()) and drawn["tx"].abs().max() == 4  # round(U(-4, 4))
    assert set(drawn["ty"].tolist()) == {-6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0}
    for key, (lo, hi) in {"angle": (-10, 10), "scale": (0.8, 1.2), "shear_x": (-5, 5), "shear_y": (0, 3)}.items():
        v = drawn[key]
        assert lo <= v.min() and v.max() <= hi and abs(v.mean() - (lo + hi) / 2) < 0.02 * (hi - lo), key


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("fill", [None, 0.0, 0.3])
def test_perspective_matches_torchvision_for_the_same_corners(mode, fill, x):
    h, w = x.shape[-2:]
    corners = sampling.perspective_corners(len(x), h, w, 0.6, torch.Generator().manual_seed(2), torch.device("cpu"))
    ours = functional.perspective(x, sampling.perspective_coeffs(corners, h, w), mode, fill)
    start = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
    ref = torch.stack([TF.perspective(img, start, [[int(v) for v in xy] for xy in end.tolist()],
                                      interpolation=TF.InterpolationMode(mode), fill=fill)
                       for img, end in zip(x, corners)])
    if mode == "nearest":  # a grid point within float32 rounding of a pixel edge may pick the neighbour
        assert (ours - ref).abs().gt(1e-6).float().mean() < 0.002
    else:
        assert_float_close(ours, ref, extent=max(h, w))


def test_perspective_corners_move_inward_uniformly_within_torchvisions_bounds():
    h, w, n = 30, 41, 20000
    corners = sampling.perspective_corners(n, h, w, 0.5, torch.Generator().manual_seed(0), torch.device("cpu"))
    bound_w, bound_h = int(0.5 * (w // 2)) + 1, int(0.5 * (h // 2)) + 1  # torchvision's randint bounds
    x, y = corners[..., 0], corners[..., 1]
    assert torch.equal(corners, corners.floor())
    for values, lo, bound in ((x[:, 0], 0, bound_w), (x[:, 3], 0, bound_w), (x[:, 1], w - bound_w, bound_w),
                              (x[:, 2], w - bound_w, bound_w), (y[:, 0], 0, bound_h), (y[:, 1], 0, bound_h),
                              (y[:, 2], h - bound_h, bound_h), (y[:, 3], h - bound_h, bound_h)):
        counts = torch.bincount((values - lo).long())
        assert values.min() == lo and len(counts) == bound
        assert (counts.float() / n - 1 / bound).abs().max() < 0.012


def test_equalize_matches_torchvision_on_floats_and_exactly_on_uint8_levels(x):
    y = x.clone()
    y[1] = y[1] * 0.2 + 0.3           # a narrow histogram
    y[2, 0] = 0.5                     # a flat channel: left as it is
    y[3] = (y[3] * 4).floor() / 4     # few levels
    assert_float_close(functional.equalize(y), TF.equalize(y))
    u = torch.randint(0, 256, (4, 3, 20, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(functional.equalize(u.float() / 255), TF.equalize(u).float() / 255, atol=0, rtol=0)
