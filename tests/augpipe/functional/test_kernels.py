"""Each kernel against torchvision.transforms.v2.functional for the same parameters."""
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from augpipe import functional
from tests.tolerance import assert_float_close

ATOL = 1e-5  # float32 rounding; every kernel computes the same formula as torchvision


@pytest.fixture
def images(photo_batch):
    return photo_batch.float() / 255


def per_image(fn, images, values):
    return torch.stack([fn(img, float(v)) for img, v in zip(images, values)])


def test_resized_crop_matches_torchvision_per_sample(images, gen):
    n, _, h, w = images.shape
    boxes = []
    for _ in range(n):
        bh, bw = torch.randint(2, h + 1, (2,), generator=gen).tolist()
        top = torch.randint(0, h - bh + 1, (1,), generator=gen).item()
        left = torch.randint(0, w - bw + 1, (1,), generator=gen).item()
        boxes.append([top, left, bh, bw])
    boxes = torch.tensor(boxes)
    for size in [(32, 32), (20, 28), (64, 64)]:
        ours = functional.resized_crop(images, boxes, size)
        ref = torch.stack([TF.resized_crop(img, *b.tolist(), list(size), antialias=False)
                           for img, b in zip(images, boxes)])
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


def _random_boxes(n, h, w, gen, smallest=2):
    boxes = []
    for _ in range(n):
        bh, bw = torch.randint(smallest, h + 1, (1,), generator=gen).item(), torch.randint(smallest, w + 1, (1,),
                                                                                            generator=gen).item()
        boxes.append([torch.randint(0, h - bh + 1, (1,), generator=gen).item(),
                      torch.randint(0, w - bw + 1, (1,), generator=gen).item(), bh, bw])
    return torch.tensor(boxes)


@pytest.mark.parametrize("side, out", [(48, 32), (96, 32), (256, 224), (32, 96), (96, 224), (40, 20)])
def test_antialiased_resized_crop_matches_torchvision_per_sample(side, out, gen):
    """Shrinking and enlarging, each sample its own box and so its own filter width."""
    x = torch.rand(6, 3, side, side, generator=gen)
    boxes = _random_boxes(6, side, side, gen)
    ours = functional.resized_crop(x, boxes, (out, out), antialias=True)
    ref = torch.stack([TF.resized_crop(img, *b.tolist(), [out, out], antialias=True) for img, b in zip(x, boxes)])
    assert_float_close(ours, ref, extent=side)
    if side > out:  # shrinking the whole image: without antialiasing the result is not torchvision's
        whole = torch.tensor([[0, 0, side, side]] * 6)
        ref = TF.resize(x, [out, out], antialias=True)
        assert_float_close(functional.resized_crop(x, whole, (out, out), antialias=True), ref, extent=side)
        assert (functional.resized_crop(x, whole, (out, out)) - ref).abs().max() > 1e-2


def test_antialiased_crop_with_flip_is_the_flipped_crop(gen):
    x = torch.rand(8, 3, 64, 64, generator=gen)
    boxes = _random_boxes(8, 64, 64, gen)
    flip = torch.arange(8) % 2 == 0
    fused = functional.resized_crop(x, boxes, (24, 24), flip=flip, antialias=True)
    plain = functional.resized_crop(x, boxes, (24, 24), antialias=True)
    torch.testing.assert_close(fused, torch.where(flip.view(-1, 1, 1, 1), plain.flip(-1), plain), atol=0, rtol=0)


def test_full_box_resize_equals_resize(images):
    n, _, h, w = images.shape
    boxes = torch.tensor([[0, 0, h, w]] * n)
    torch.testing.assert_close(functional.resized_crop(images, boxes, (h, w)), images, atol=ATOL, rtol=0)


def test_hue_matches_torchvision(images, gen):
    values = -0.5 + torch.rand(images.shape[0], generator=gen)
    torch.testing.assert_close(functional.hue(images.clone(), values), per_image(TF.adjust_hue, images, values),
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("j, ref, low, high", [
    (0, TF.adjust_brightness, 0.2, 1.8),
    (1, TF.adjust_contrast, 0.2, 1.8),
    (2, TF.adjust_saturation, 0.0, 1.8),
    (3, TF.adjust_hue, -0.5, 0.5),
])
def test_color_jitter_single_adjustment_matches_torchvision(images, gen, j, ref, low, high):
    """One adjustment active (the others at their identity), at every position of the order."""
    n = images.shape[0]
    values = low + (high - low) * torch.rand(n, generator=gen)
    factors = torch.tensor([1.0, 1.0, 1.0, 0.0]).repeat(n, 1)
    factors[:, j] = values
    order = torch.rand(n, 4, generator=gen).argsort(1)
    ours = functional.color_jitter(images, factors, order, use_hue=j == 3)
    torch.testing.assert_close(ours, per_image(ref, images, values), atol=ATOL, rtol=0)


@pytest.mark.parametrize("inplace", [False, True])
def test_color_jitter_follows_each_samples_order(images, gen, inplace):
    n = images.shape[0]
    factors = torch.stack([0.2 + 1.6 * torch.rand(n, generator=gen) for _ in range(3)]
                          + [torch.rand(n, generator=gen) - 0.5], 1)
    order = torch.rand(n, 4, generator=gen).argsort(1)
    fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    expected = []
    for img, f, o in zip(images, factors, order):
        for j in o.tolist():
            img = fns[j](img, float(f[j]))
        expected.append(img)
    before = images.clone()
    ours = functional.color_jitter(images.clone() if inplace else images, factors, order, inplace=inplace)
    torch.testing.assert_close(ours, torch.stack(expected), atol=2 * ATOL, rtol=0)
    assert torch.equal(images, before)
    # the order matters: the same factors in another order give other pixels
    other = functional.color_jitter(images, factors, order.flip(1))
    assert (other - ours).abs().max() > 0.05


def test_hue_handles_gray_and_saturated_pixels():
    # gray pixels (max == min) and pure primaries are the branch edges of the HSV formula
    img = torch.tensor([[[[0.5, 1.0, 0.0, 0.0, 1.0]], [[0.5, 0.0, 1.0, 0.0, 1.0]], [[0.5, 0.0, 0.0, 1.0, 0.0]]]])
    for shift in (-0.5, -0.25, 0.1, 0.5):
        torch.testing.assert_close(functional.hue(img, torch.tensor([shift])), TF.adjust_hue(img[0], shift)[None],
                                   atol=ATOL, rtol=0)


def test_grayscale_matches_torchvision(images):
    torch.testing.assert_close(functional.grayscale(images), TF.rgb_to_grayscale(images, num_output_channels=3),
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("k", [3, 5, 9])
def test_gaussian_blur_matches_torchvision_per_sample_sigma(images, gen, k):
    sigma = 0.1 + 1.9 * torch.rand(images.shape[0], generator=gen)
    ref = torch.stack([TF.gaussian_blur(img, [k, k], [float(s), float(s)]) for img, s in zip(images, sigma)])
    torch.testing.assert_close(functional.gaussian_blur(images, sigma, k), ref, atol=ATOL, rtol=0)


def test_solarize_matches_torchvision(images):
    t = torch.full((images.shape[0],), 0.5)
    torch.testing.assert_close(functional.solarize(images, t), TF.solarize(images, 0.5), atol=0, rtol=0)


def test_gaussian_noise_formula_and_clipping(images, gen):
    noise = torch.randn(images.shape, generator=gen)
    std = torch.linspace(0, 0.3, images.shape[0])
    out = functional.gaussian_noise(images, std, noise)
    torch.testing.assert_close(out, (images + std.view(-1, 1, 1, 1) * noise).clamp(0, 1))
    assert torch.equal(out[0], images[0])  # std 0 leaves the image unchanged


def test_normalize_matches_torchvision(images):
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    torch.testing.assert_close(functional.normalize(images, mean, std),
                               TF.normalize(images, mean.tolist(), std.tolist()), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["crop", "flip", "jitter", "hue", "gray", "blur", "solarize", "noise", "normalize"])
def test_out_of_place_kernels_leave_their_input_alone(images, gen, name):
    """Every kernel called with inplace=False (the blend path) returns a new result and leaves its
    input untouched; twice the same call gives the same output (no randomness inside)."""
    n = images.shape[0]
    f = 0.5 + torch.rand(n, generator=gen)
    calls = {
        "crop": lambda x: functional.resized_crop(x, torch.tensor([[2, 3, 30, 20]] * n), (24, 24), flip=f > 1),
        "flip": functional.hflip,
        "jitter": lambda x: functional.color_jitter(x, torch.stack([f, f, f, f - 1], 1), torch.arange(4).repeat(n, 1)),
        "hue": lambda x: functional.hue(x, f - 1),
        "gray": functional.grayscale,
        "blur": lambda x: functional.gaussian_blur(x, f, 5),
        "solarize": lambda x: functional.solarize(x, 0.5),
        "noise": lambda x: functional.gaussian_noise(x, f, torch.ones_like(x)),
        "normalize": lambda x: functional.normalize(x, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)),
    }
    before = images.clone()
    a, b = calls[name](images), calls[name](images)
    assert torch.equal(images, before)
    assert torch.equal(a, b)
    assert not (a.shape == before.shape and torch.equal(a, before))  # it did transform the images


def test_kernels_are_pure(images):
    """Kernels draw nothing: the same call twice gives the same output, input untouched."""
    before = images.clone()
    sigma = torch.full((images.shape[0],), 1.0)
    a = functional.gaussian_blur(images, sigma, 5)
    b = functional.gaussian_blur(images, sigma, 5)
    assert torch.equal(a, b) and torch.equal(images, before)


def test_hflip_matches_torchvision(images):
    torch.testing.assert_close(functional.hflip(images), TF.horizontal_flip(images), atol=0, rtol=0)


def test_solarize_inverts_at_the_threshold_per_sample_and_in_place():
    x = torch.tensor([0.2, 0.5, 0.7]).view(1, 1, 1, 3).repeat(2, 3, 1, 1)
    t = torch.tensor([0.2, 0.7])  # pixels equal to the threshold are inverted (>=), as torchvision
    expected = torch.stack([TF.solarize(img, float(v)) for img, v in zip(x, t)])
    assert expected[1, 0, 0].tolist() == pytest.approx([0.2, 0.5, 0.3])
    torch.testing.assert_close(functional.solarize(x, t), expected, atol=0, rtol=0)
    y = x.clone()
    out = functional.solarize(y, t, inplace=True)
    assert out.data_ptr() == y.data_ptr() and torch.equal(y, expected)


def test_normalize_constants_follow_the_values_and_the_images_dtype():
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    for mean, std in [((0.1, 0.2, 0.3), (0.5, 0.6, 0.7)), ((0.7, 0.6, 0.5), (0.3, 0.2, 0.1))]:
        out = functional.normalize(x, mean, std)  # cached per values: the second call must not reuse the first
        ref = (x - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, ref, atol=0, rtol=0)  # float64 constants, not float32 ones
    as_tensors = functional.normalize(x.float(), torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64),
                                   torch.tensor([0.5, 0.6, 0.7], dtype=torch.float64))
    assert as_tensors.dtype == torch.float32  # tensor constants take the images' dtype


def test_grayscale_in_place_writes_the_luma_into_its_input(images):
    x = images.clone()
    out = functional.grayscale(x, inplace=True)
    assert out.data_ptr() == x.data_ptr()
    torch.testing.assert_close(x, TF.rgb_to_grayscale(images, num_output_channels=3), atol=ATOL, rtol=0)


@pytest.mark.parametrize("width", [1, 2, 3])
def test_resized_crop_of_very_narrow_images_matches_torchvision(width):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 5, width, generator=g)
    boxes = torch.tensor([[0, 0, 5, width], [1, 0, 3, width]])
    ours = functional.resized_crop(x, boxes, (4, 4))
    ref = torch.stack([TF.resized_crop(img, int(t), int(le), int(h), int(w), [4, 4], antialias=False)
                       for img, (t, le, h, w) in zip(x, boxes.tolist())])
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


def test_kernels_make_their_helper_tensors_on_the_images_device():
    """The meta device stands in for CUDA: boxes, grids and constants follow the images."""
    x = torch.empty(2, 3, 8, 8, device="meta")
    assert functional.resized_crop(x, torch.tensor([[0, 0, 8, 8], [1, 1, 4, 4]]), (4, 4)).device.type == "meta"
    assert functional.normalize(x, (0.4, 0.5, 0.6), (0.2, 0.2, 0.2)).device.type == "meta"
    assert functional.normalize(x, torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.2, 0.2])).device.type == "meta"


def test_float64_images_are_blurred_and_noised_in_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 9, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.7, 1.6])
    ref = torch.stack([TF.gaussian_blur(img, [5, 5], [float(s), float(s)]) for img, s in zip(x, sigma)])
    out = functional.gaussian_blur(x, sigma, 5)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)  # float32 taps would be ~1e-7 off
    noise = torch.randn(x.shape, generator=g, dtype=torch.float64)
    std = torch.tensor([0.05, 0.1], dtype=torch.float64)
    noisy = functional.gaussian_noise(x, std, noise.float())
    assert noisy.dtype == torch.float64
    x32 = functional.gaussian_noise(x.float(), std, noise)
    assert x32.dtype == torch.float32  # parameters follow the images' dtype
    meta = torch.empty(2, 3, 9, 9, device="meta")
    assert functional.gaussian_blur(meta, sigma.to("meta"), 5).device.type == "meta"


def test_hue_breaks_ties_between_maximal_channels_as_torchvision():
    """Pixels whose largest value is shared by two channels (r = g, g = b, r = b) or all three."""
    px = torch.tensor([[0.8, 0.8, 0.2], [0.3, 0.9, 0.9], [0.7, 0.1, 0.7], [0.5, 0.5, 0.5], [0.9, 0.9, 0.0]])
    x = px.T.reshape(1, 3, 1, 5).repeat(3, 1, 1, 1)
    shift = torch.tensor([0.1, -0.25, 0.4])
    ref = torch.stack([TF.adjust_hue(img, float(s)) for img, s in zip(x, shift)])
    torch.testing.assert_close(functional.hue(x, shift), ref, atol=ATOL, rtol=0)


def test_color_jitter_in_float64_matches_torchvision_in_float64(images, gen):
    x = images.double()
    n = x.shape[0]
    factors = torch.stack([0.6 + 0.8 * torch.rand(n, generator=gen) for _ in range(3)]
                          + [0.2 * torch.rand(n, generator=gen) - 0.1], 1)
    order = torch.stack([torch.randperm(4, generator=gen) for _ in range(n)])
    adjust = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    ref = []
    for img, f, o in zip(x, factors.tolist(), order.tolist()):
        for j in o:
            img = adjust[j](img, f[j])
        ref.append(img)
    out = functional.color_jitter(x, factors, order)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.stack(ref), atol=ATOL, rtol=0)  # torchvision keeps float32 constants


def test_resized_crop_grid_is_torchvisions_to_float64_rounding_at_imagenet_size():
    """The sampling grid is built in float64: on float64 images the crop equals F.resized_crop at
    224 px to 1e-12 (with a float32 grid it was 4e-5 off). On float32 images both sides round
    their coordinates in float32 (torchvision's interpolate does too): a few 1e-5 on noise."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 256, 320, generator=g, dtype=torch.float64)
    boxes = torch.tensor([[3, 7, 201, 255], [0, 0, 256, 320], [40, 90, 97, 131], [11, 2, 233, 178]])
    ours = functional.resized_crop(x, boxes, (224, 224))
    ref = torch.stack([TF.resized_crop(img, *b.tolist(), [224, 224], antialias=False) for img, b in zip(x, boxes)])
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
