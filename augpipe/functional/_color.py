"""Colour kernels: jitter (brightness, contrast, saturation, hue), grayscale, solarize, invert,
posterize, sharpness, autocontrast, equalize and channel permutation, per sample.
"""
from __future__ import annotations

import torch

from augpipe.functional._utils import per_sample

# ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses.
_LUMA = (0.2989, 0.587, 0.114)


def grayscale(images: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """`F.rgb_to_grayscale(img, num_output_channels=3)` (out of place: a broadcast view of the luma)."""
    luma = _luma(images).expand_as(images)
    return images.copy_(luma) if inplace else luma


def _luma(images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """`[N, 1, H, W]` luma; `out` (same shape) is reused when given."""
    r, g, b = images.unbind(1)
    luma = torch.mul(r, _LUMA[0], out=None if out is None else out.squeeze(1))
    return luma.add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2]).unsqueeze(1)


def hue(images: torch.Tensor, shift: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """`F.adjust_hue(img, shift)`: rotate the HSV hue by `shift` turns, keep S and V.

    Hue is computed in sixths of a turn as torchvision does (sector offset 0/2/4 for a max in
    R/G/B plus the normalised difference of the other two), shifted, and converted back with the
    branch-free form `c = V - (V-min)*clamp(min(k, 4-k), 0, 1)`, `k = (n + 6h) mod 6` for
    n = 5, 3, 1 (R, G, B), the three channels in one broadcast pass. Sectors are chosen by 0/1
    float weights and the modulo is `k - 6 floor(k/6)`: on the CPU `torch.where` and
    `torch.remainder` are scalar loops, 10-20x slower than the vectorised arithmetic used here.
    """
    r, g, b = images.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    w_r = (maxc == r).to(images.dtype)
    w_g = (maxc == g).to(images.dtype).mul_(1.0 - w_r)
    w_b = (1.0 - w_r).sub_(w_g)
    # (num + sector * delta) / delta, num = g-b | b-r | r-g; gray pixels (delta 0) give 0 / tiny = 0
    h6 = (g - b).mul_(w_r).addcmul_(b - r, w_g).addcmul_(r - g, w_b)
    h6 = h6.addcmul_(delta, w_g, value=2.0).addcmul_(delta, w_b, value=4.0)
    h6 = h6.div_(delta.clamp_min(1e-12)).add_(shift.to(images.dtype).view(-1, 1, 1) * 6.0).unsqueeze(1)
    n = torch.arange(5, 0, -2, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)  # R, G, B
    k = h6 + n
    q = torch.mul(k, 1.0 / 6.0).floor_()
    k = k.sub_(q.mul_(6.0))                                  # k mod 6
    ramp = torch.minimum(k, torch.neg(k, out=q).add_(4.0), out=k).clamp_(0.0, 1.0)
    out = torch.sub(maxc.unsqueeze(1), ramp.mul_(delta.unsqueeze(1)), out=images if inplace else None)
    # torchvision can land a rounding error above 1.0; the [0, 1] contract holds here.
    return out.clamp_(0.0, 1.0)


def color_jitter(images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor,
                 use_hue: bool = True, inplace: bool = False, hue_kernel=None) -> torch.Tensor:
    """torchvision's ColorJitter with per-sample factors and a per-sample order, fixed shapes.

    `factors [N, 4]` are (brightness, contrast, saturation, hue shift); `order [N, 4]` is each
    sample's permutation of the four adjustments (0 b, 1 c, 2 s, 3 hue). Equals applying
    `F.adjust_brightness / contrast / saturation / hue` in that order per sample.

    No row subsets and no branch on the data (so `torch.compile(fullgraph=True)` and CUDA graphs
    take it): brightness, contrast and saturation are one formula, `clamp(lerp(ref, x, f))` with
    `ref` = 0, the mean luma, or the luma, chosen per sample by 0/1 weights. Hue, the one costly
    adjustment, runs once: the three affine adjustments are run as 3 steps before the hue (step j
    active where j < the sample's hue position) and 3 after (active where j >= it); an inactive
    step has factor 1, which `lerp` makes an exact identity. `use_hue=False` (hue strength 0,
    which torchvision skips) runs the three affine steps only. After the first step every pass
    writes into one working tensor (fresh multi-MB tensors cost page faults on the CPU).
    `hue_kernel` replaces `hue` by an equal implementation (the CPU path's compiled one).
    """
    n = images.shape[0]
    is_hue = order == 3
    hue_pos = is_hue.to(torch.int8).argmax(dim=1, keepdim=True)       # [N, 1]
    # the affine adjustments in the sample's order, hue removed: a stable sort puts it last
    affine = order.gather(1, is_hue.to(torch.int8).argsort(dim=1, stable=True)[:, :3])  # [N, 3]
    f = factors.to(images.dtype).gather(1, affine)
    w_con = (affine == 1).to(images.dtype)
    w_sat = (affine == 2).to(images.dtype)
    step = torch.arange(3, device=images.device).view(1, 3)
    before = step < hue_pos if use_hue else torch.ones_like(affine, dtype=torch.bool)
    f_pre, f_post = torch.where(before, f, 1.0), torch.where(before, 1.0, f)

    buffer = torch.empty_like(images[:, :1])  # one luma buffer for the six steps

    def affine_step(x, j, fj, out):
        ref = _luma(x, out=buffer)  # ref = w_sat * luma + w_con * mean(luma): 0, mean luma or luma
        mean = ref.mean(dim=(2, 3), keepdim=True).mul_(w_con[:, j].view(n, 1, 1, 1))
        ref = ref.mul_(w_sat[:, j].view(n, 1, 1, 1)).add_(mean)
        return torch.lerp(ref, x, fj[:, j].view(n, 1, 1, 1), out=out).clamp_(0.0, 1.0)

    x = affine_step(images, 0, f_pre, images if inplace else None)
    for j in (1, 2):
        x = affine_step(x, j, f_pre, x)
    if not use_hue:
        return x
    x = (hue_kernel or hue)(x, factors[:, 3], inplace=True)
    for j in range(3):
        x = affine_step(x, j, f_post, x)
    return x


def solarize(images: torch.Tensor, threshold: float | torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """`F.solarize(img, threshold)`: invert pixels at or above the threshold (a number or `[N]`)."""
    if isinstance(threshold, torch.Tensor):
        threshold = per_sample(threshold, images)
    # the step as a float tensor (`ge` into a float output) and a lerp, which is exact at weights 0
    # and 1: the same values as `where(x >= t, 1 - x, x)`, and faster on the CPU at every size
    # (benchmarks/kernel-choices.json, `solarize-lerp`)
    above = torch.ge(images, threshold, out=images.new_empty(images.shape))  # contiguous: dynamo needs that
    return torch.lerp(images, 1.0 - images, above, out=images if inplace else None)


def invert(images: torch.Tensor) -> torch.Tensor:
    """`F.invert` on float images: 1 - x."""
    return 1.0 - images


def permute_channels(images: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """`F.permute_channels(img, order)` with one permutation `[N, C]` per sample."""
    return images.gather(1, order.view(*order.shape, 1, 1).expand_as(images))


def posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """`F.posterize(img, bits)` on float images, `bits` `[N]` per sample: floor(x * 2^b) / 2^b,
    the top level clamped to 2^b - 1."""
    levels = torch.exp2(bits.to(images.dtype)).view(-1, 1, 1, 1)
    return torch.minimum(images.mul(levels).floor_(), levels - 1).clamp_min_(0).div_(levels)


def adjust_sharpness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """`F.adjust_sharpness(img, factor)`, `factor` `[N]`: the interior blended with torchvision's
    3x3 smoothing kernel (1s around a 5, over 13), the one-pixel border kept; clamped to [0, 1].
    The kernel is a 3x3 box plus 4 x the centre: shifted sums, faster than a 1-channel conv on
    the CPU (benchmarks/kernel-choices.json, `sharpness-shifted-sums`)."""
    h, w = images.shape[-2:]
    if h <= 2 or w <= 2:
        return images
    row = images[..., :, :-2] + images[..., :, 1:-1] + images[..., :, 2:]
    inner = images[..., 1:-1, 1:-1]
    blurred = (row[..., :-2, :] + row[..., 1:-1, :] + row[..., 2:, :]).add_(inner, alpha=4.0).div_(13.0)
    out = images.clone()
    out[..., 1:-1, 1:-1] = torch.lerp(blurred, inner, factor.to(images.dtype).view(-1, 1, 1, 1))  # x + (1-f)(blur - x)
    return out.clamp_(0.0, 1.0)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """`F.autocontrast`: each channel stretched to [0, 1]; a flat channel is left as it is."""
    low = images.amin(dim=(-2, -1), keepdim=True)
    high = images.amax(dim=(-2, -1), keepdim=True)
    flat = high == low
    scale = torch.where(flat, 1.0, high - low)
    low = torch.where(flat, 0.0, low)
    return images.sub(low).div_(scale).clamp_(0.0, 1.0)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """`F.equalize` on float images: each channel's 256-level histogram equalised with PIL's
    lookup table (`lut[k] = (cdf[k-1] + step // 2) // step`, `step` = the pixels below the
    brightest level // 255), channels with `step == 0` left as they are. Levels are torchvision's
    float -> uint8 conversion (x * 255.999, floored) and back (/ 255). Batched, no host read; the
    counts in int32 and the table applied in float, faster than int64
    (benchmarks/kernel-choices.json, `equalize-int32`)."""
    levels = images.mul(255.999).to(torch.int64).flatten(-2)  # [N, C, HW]
    hist = torch.zeros(*levels.shape[:-1], 256, dtype=torch.int32, device=images.device)
    hist.scatter_add_(-1, levels, torch.ones(1, dtype=torch.int32, device=images.device).expand_as(levels))
    cdf = hist.cumsum(-1, dtype=torch.int32)
    brightest = cdf.argmax(-1, keepdim=True)  # the first level holding every pixel
    step = (levels.shape[-1] - hist.gather(-1, brightest)).div(255, rounding_mode="floor")
    lut = (cdf[..., :-1] + step // 2).div(step.clamp_min(1), rounding_mode="floor").clamp_(0, 255)
    lut = torch.cat([torch.zeros_like(lut[..., :1]), lut], dim=-1).to(images.dtype).div_(255.0)
    same = torch.arange(256, device=images.device, dtype=images.dtype).div_(255.0)  # step == 0: unchanged levels
    return torch.where(step > 0, lut, same).gather(-1, levels).view_as(images)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """`F.adjust_brightness(img, f)` per sample: clamp(f x)."""
    return images.mul(factor.to(images.dtype).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """`F.adjust_saturation(img, f)` per sample: the blend of the luma and the image."""
    return torch.lerp(_luma(images).expand_as(images), images, factor.to(images.dtype).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """`F.adjust_contrast(img, f)` per sample: the blend of the mean luma and the image."""
    mean = _luma(images).mean(dim=(1, 2, 3), keepdim=True).expand_as(images)
    return torch.lerp(mean, images, factor.to(images.dtype).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)
