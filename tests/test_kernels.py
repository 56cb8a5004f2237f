"""Each kernel against torchvision.transforms.v2.functional for the same parameters."""
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from augpipe import kernels

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
        ours = kernels.resized_crop(images, boxes, size)
        ref = torch.stack([TF.resized_crop(img, *b.tolist(), list(size), antialias=False)
                           for img, b in zip(images, boxes)])
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


def test_full_box_resize_equals_resize(images):
    n, _, h, w = images.shape
    boxes = torch.tensor([[0, 0, h, w]] * n)
    torch.testing.assert_close(kernels.resized_crop(images, boxes, (h, w)), images, atol=ATOL, rtol=0)


@pytest.mark.parametrize("ours, ref, low, high", [
    (kernels.brightness, TF.adjust_brightness, 0.2, 1.8),
    (kernels.contrast, TF.adjust_contrast, 0.2, 1.8),
    (kernels.saturation, TF.adjust_saturation, 0.0, 1.8),
    (kernels.hue, TF.adjust_hue, -0.5, 0.5),
])
def test_color_kernels_match_torchvision(images, gen, ours, ref, low, high):
    values = low + (high - low) * torch.rand(images.shape[0], generator=gen)
    torch.testing.assert_close(ours(images.clone(), values), per_image(ref, images, values), atol=ATOL, rtol=0)


def test_hue_handles_gray_and_saturated_pixels():
    # gray pixels (max == min) and pure primaries are the branch edges of the HSV formula
    img = torch.tensor([[[[0.5, 1.0, 0.0, 0.0, 1.0]], [[0.5, 0.0, 1.0, 0.0, 1.0]], [[0.5, 0.0, 0.0, 1.0, 0.0]]]])
    for shift in (-0.5, -0.25, 0.1, 0.5):
        torch.testing.assert_close(kernels.hue(img, torch.tensor([shift])), TF.adjust_hue(img[0], shift)[None],
                                   atol=ATOL, rtol=0)


def test_grayscale_matches_torchvision(images):
    torch.testing.assert_close(kernels.grayscale(images), TF.rgb_to_grayscale(images, num_output_channels=3),
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("k", [3, 5, 9])
def test_gaussian_blur_matches_torchvision_per_sample_sigma(images, gen, k):
    sigma = 0.1 + 1.9 * torch.rand(images.shape[0], generator=gen)
    ref = torch.stack([TF.gaussian_blur(img, [k, k], [float(s), float(s)]) for img, s in zip(images, sigma)])
    torch.testing.assert_close(kernels.gaussian_blur(images, sigma, k), ref, atol=ATOL, rtol=0)


def test_solarize_matches_torchvision(images):
    t = torch.full((images.shape[0],), 0.5)
    torch.testing.assert_close(kernels.solarize(images, t), TF.solarize(images, 0.5), atol=0, rtol=0)


def test_gaussian_noise_formula_and_clipping(images, gen):
    noise = torch.randn(images.shape, generator=gen)
    std = torch.linspace(0, 0.3, images.shape[0])
    out = kernels.gaussian_noise(images, std, noise)
    torch.testing.assert_close(out, (images + std.view(-1, 1, 1, 1) * noise).clamp(0, 1))
    assert torch.equal(out[0], images[0])  # std 0 leaves the image unchanged


def test_normalize_matches_torchvision(images):
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    torch.testing.assert_close(kernels.normalize(images, mean, std),
                               TF.normalize(images, mean.tolist(), std.tolist()), atol=ATOL, rtol=0)


def test_kernels_are_pure(images):
    """Kernels draw nothing: the same call twice gives the same output, input untouched."""
    before = images.clone()
    sigma = torch.full((images.shape[0],), 1.0)
    a = kernels.gaussian_blur(images, sigma, 5)
    b = kernels.gaussian_blur(images, sigma, 5)
    assert torch.equal(a, b) and torch.equal(images, before)
