"""Pure batched kernels: `(images, per-sample params) -> images`, no randomness inside.

Images are float `[N, 3, H, W]` in [0, 1]; every parameter is a tensor with a leading `N`, so each
sample gets its own value in one batched call (no Python loop over samples). Each kernel states the
`torchvision.transforms.v2.functional` call it reproduces; tests feed the same parameters to both.

Why our own kernels instead of Kornia's modules: Kornia routes crops through a perspective warp
(a 3x3 matrix per sample, `warp_perspective`), hue through a full HSV round trip with atan2-free
but many-temporaries code, and wraps every op in parameter bookkeeping. The versions here are a
single `grid_sample` for crops, a branch-free hue rotation, and a grouped convolution for
per-sample blur; `tests/augpipe/test_kernels.py` checks each against torchvision.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses.
_LUMA = (0.2989, 0.587, 0.114)


def _per_sample(values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Shape `[N]` parameters as `[N, 1, 1, 1]` to broadcast over images."""
    return values.to(images.dtype).view(-1, 1, 1, 1)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int],
                 flip: torch.Tensor | None = None) -> torch.Tensor:
    """Crop box `(top, left, h, w)` of each image and resize it to `size`, bilinearly.

    Matches `F.resized_crop(img, top, left, h, w, size, antialias=False)` per sample: sample
    points are the output pixel centres mapped into the box (half-pixel convention) and clamped
    to the box's edge pixels, exactly as resizing the cropped image does. One `grid_sample` call
    for the whole batch. No antialiasing when shrinking (as `antialias=False`).
    `flip` (`[N]` bool) mirrors the selected outputs horizontally for free: their sampling grid
    is read right to left, which equals `F.horizontal_flip` of the crop exactly.
    """
    n, _, in_h, in_w = images.shape
    out_h, out_w = size
    # the grid in float64 (a few [N, side] vectors: free), cast once: in float32 the sampling
    # points drift up to 1.5e-5 from F.resized_crop's at 224 px; in float64 they agree to 1e-14
    boxes = boxes.to(device=images.device, dtype=torch.float64)
    top, left, bh, bw = boxes.unbind(1)

    def axis(start, length, out_len, in_len):
        centres = (torch.arange(out_len, device=images.device, dtype=torch.float64) + 0.5)
        coords = start[:, None] + centres[None, :] * (length / out_len)[:, None] - 0.5
        coords = torch.minimum(torch.maximum(coords, start[:, None]),
                               (start + length - 1)[:, None])
        # align_corners=True: -1 and +1 are the centres of the first and last pixel.
        return coords * (2.0 / max(in_len - 1, 1)) - 1.0

    gx = axis(left, bw, out_w, in_w)  # [N, out_w]
    if flip is not None:
        gx = torch.where(flip[:, None], gx.flip(1), gx)
    gy = axis(top, bh, out_h, in_h)   # [N, out_h]
    # two [N, H, W] planes as a permuted view, as in `affine`: no copy with an inner size of 2
    planes = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=1).to(images.dtype)
    return F.grid_sample(images, planes.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def hflip(images: torch.Tensor) -> torch.Tensor:
    """`F.horizontal_flip`."""
    return images.flip(-1)


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


def gaussian_kernels(sigma: torch.Tensor, kernel_size: int, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian taps `[N, kernel_size]`, torchvision's `_get_gaussian_kernel1d`."""
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, kernel_size, device=sigma.device, dtype=dtype)
    pdf = torch.exp(-0.5 * (x[None, :] / sigma.to(dtype)[:, None]) ** 2)
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """`F.gaussian_blur(img, [k, k], [sigma, sigma])` with one sigma per sample.

    Separable: one grouped convolution per axis, a group per (sample, channel), reflect padding.
    The padded planes go channels-last (the groups innermost): oneDNN's depthwise convolution
    then uses every thread, where the planar layout ran on about one (measured at 224 px, 23
    taps, 2 cores: 0.40 vs 0.57-0.73 ms per image; equal at 32 px; bit-identical output).
    """
    n, c, h, w = images.shape
    taps = gaussian_kernels(sigma, kernel_size, images.dtype).repeat_interleave(c, dim=0)
    pad = kernel_size // 2
    x = images.reshape(1, n * c, h, w)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect").contiguous(memory_format=torch.channels_last)
    x = F.conv2d(x, taps.view(n * c, 1, kernel_size, 1), groups=n * c)
    x = F.conv2d(x, taps.view(n * c, 1, 1, kernel_size), groups=n * c)
    return x.view(n, c, h, w).clamp_(0.0, 1.0)  # taps sum to 1 only up to rounding


def solarize(images: torch.Tensor, threshold: float | torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """`F.solarize(img, threshold)`: invert pixels at or above the threshold (a number or `[N]`)."""
    if isinstance(threshold, torch.Tensor):
        threshold = _per_sample(threshold, images)
    # the step as a float tensor (`ge` into a float output) and a lerp, which is exact at weights 0
    # and 1: the same values as `where(x >= t, 1 - x, x)`, 2.3-2.7x faster on the CPU (2 cores,
    # 2026-11-29, ms per image: 224 px 0.15 against 0.41, 32 px 0.0035 against 0.008)
    above = torch.ge(images, threshold, out=images.new_empty(images.shape))  # contiguous: dynamo needs that
    return torch.lerp(images, 1.0 - images, above, out=images if inplace else None)


def gaussian_noise(images: torch.Tensor, std: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """`F.gaussian_noise(img, mean=0, sigma=std, clip=True)` with the standard normal `noise` given."""
    return torch.addcmul(images, _per_sample(std, images), noise.to(images.dtype)).clamp_(0.0, 1.0)


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """`F.normalize(img, mean, std)` with per-channel `mean`, `std` (`[C]` tensors or sequences;
    pass tensors already on the images' device on the GPU path: building one from host numbers is
    a host-to-device copy)."""
    mean, std = (torch.as_tensor(v, dtype=images.dtype, device=images.device).view(1, -1, 1, 1) for v in (mean, std))
    return (images - mean) / std


# --- the ops of torchvision's training recipes (augpipe/ops_recipes.py) --------------------------
def vflip(images: torch.Tensor) -> torch.Tensor:
    """`F.vertical_flip`."""
    return images.flip(-2)


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
    The kernel is a 3x3 box plus 4 x the centre: shifted sums (2x faster than a 1-channel conv
    on the CPU at 224 px)."""
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


def erase(images: torch.Tensor, boxes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`F.erase(img, top, left, h, w, v)` per sample: the box `[N, 4]` set to `values`
    (`[N, C, H, W]`, or anything that broadcasts to it), fixed shapes (a mask, not a slice)."""
    _, _, h, w = images.shape
    top, left, bh, bw = boxes.to(images.device).unbind(1)
    rows = torch.arange(h, device=images.device).view(1, h)
    cols = torch.arange(w, device=images.device).view(1, w)
    in_rows = (rows >= top[:, None]) & (rows < (top + bh)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + bw)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)
    return torch.where(mask, values.to(images.dtype), images)


def erase_rows(images: torch.Tensor, boxes: torch.Tensor, values: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """`erase`, box by box: each row's box set by one slice assignment, rows without a box
    untouched. Reads the boxes on the host: the CPU path (subset gating), where a batch-sized mask
    and `where` cost a full pass for boxes that cover a fraction of a few rows."""
    out = images if inplace else images.clone()
    values = values.to(images.dtype)
    for i, (top, left, bh, bw) in enumerate(boxes.tolist()):
        if bh > 0 and bw > 0:
            value = values[i if values.shape[0] > 1 else 0]
            if value.shape[-2:] != (1, 1):  # per-pixel values: the box's own pixels
                value = value[:, top:top + bh, left:left + bw]
            out[i, :, top:top + bh, left:left + bw] = value
    return out


PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def _pad_index(size: int, before: int, after: int, mode: str, device) -> torch.Tensor:
    """Source index of every padded position along one axis (`edge`, `reflect`, `symmetric`)."""
    i = torch.arange(-before, size + after, device=device)
    if mode == "edge":
        return i.clamp(0, size - 1)
    period = 2 * size - (2 if mode == "reflect" else 0)
    i = i.remainder(period) if period > 0 else torch.zeros_like(i)
    last = size - 1 if mode == "reflect" else size
    return torch.where(i > size - 1, 2 * last - i - (0 if mode == "reflect" else 1), i)


def pad(images: torch.Tensor, padding: tuple[int, int, int, int], mode: str = "constant",
        fill: float = 0.0) -> torch.Tensor:
    """`F.pad(img, [left, top, right, bottom], fill, padding_mode)` (static padding)."""
    left, top, right, bottom = padding
    if not any(padding):
        return images
    if mode == "constant":
        return F.pad(images, (left, right, top, bottom), value=fill)
    _, _, h, w = images.shape
    if mode == "edge" or (mode == "reflect" and max(left, right) < w and max(top, bottom) < h):
        # torch's own padding kernels: the same values, several times faster than two index_selects
        return F.pad(images, (left, right, top, bottom), mode="replicate" if mode == "edge" else "reflect")
    rows = _pad_index(h, top, bottom, mode, images.device)
    cols = _pad_index(w, left, right, mode, images.device)
    return images.index_select(-2, rows).index_select(-1, cols)


def crop_rows(images: torch.Tensor, offsets: torch.Tensor, size: tuple[int, int],
              padding: tuple[int, int, int, int] = (0, 0, 0, 0), fill: float = 0.0) -> torch.Tensor:
    """`crop(pad(images, padding, "constant", fill), offsets, size)` row by row, without making the
    padded batch: each row is `fill` where its window leaves the image and one strided copy of the
    image where it overlaps. Reads the offsets on the host: the CPU path (subset gating), where
    that is free and a copy per row is several times faster than two gathers over the batch."""
    n, c, h, w = images.shape
    out_h, out_w = size
    left, top = padding[0], padding[1]
    out = images.new_empty((n, c, out_h, out_w))
    for i, (y, x) in enumerate(offsets.tolist()):
        y0, x0 = y - top, x - left  # the window's corner in image coordinates
        # the overlap, in output coordinates (empty when the window misses the image)
        r0, r1 = min(max(0, -y0), out_h), max(min(out_h, h - y0), 0)
        c0, c1 = min(max(0, -x0), out_w), max(min(out_w, w - x0), 0)
        if r0 >= r1 or c0 >= c1:
            out[i].fill_(fill)
            continue
        out[i, :, r0:r1, c0:c1] = images[i, :, y0 + r0:y0 + r1, x0 + c0:x0 + c1]
        for strip in (out[i, :, :r0], out[i, :, r1:], out[i, :, r0:r1, :c0], out[i, :, r0:r1, c1:]):
            if strip.numel():  # only the border outside the overlap is fill: one pass per pixel
                strip.fill_(fill)
    return out


def crop(images: torch.Tensor, offsets: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`F.crop(img, top, left, h, w)` with (top, left) `[N, 2]` per sample and one output size:
    one gather over the flattened pixels, fixed shapes (2 cores, 256 x 32 px from 40 px: 0.9
    against 2.4 ms for a gather of rows, then of columns)."""
    n, c, h, w = images.shape
    out_h, out_w = size
    rows = offsets[:, 0:1] + torch.arange(out_h, device=images.device).view(1, out_h)  # [N, out_h]
    cols = offsets[:, 1:2] + torch.arange(out_w, device=images.device).view(1, out_w)
    index = (rows.view(n, out_h, 1) * w + cols.view(n, 1, out_w)).view(n, 1, out_h * out_w)
    pixels = images.reshape(n, c, h * w).gather(2, index.expand(n, c, out_h * out_w))
    return pixels.view(n, c, out_h, out_w)


def inverse_affine_matrix(angle: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, scale: torch.Tensor,
                          shear_x: torch.Tensor, shear_y: torch.Tensor, centre: tuple[float, float] = (0.0, 0.0)
                          ) -> torch.Tensor:
    """torchvision's `_get_inverse_affine_matrix` per sample: `[N, 6]` (float64, as torchvision's
    Python floats) from angles and shears in degrees, about `centre` (pixels from the image
    centre: `(-W/2, -H/2)` is the top-left corner, AutoAugment's shears)."""
    rot, sx, sy = (torch.deg2rad(v.to(torch.float64)) for v in (angle, shear_x, shear_y))
    tx, ty, scale = (v.to(torch.float64) for v in (tx, ty, scale))
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    m0, m1, m3, m4 = d / scale, -b / scale, -c / scale, a / scale
    cx, cy = centre
    return torch.stack([m0, m1, cx - m0 * (cx + tx) - m1 * (cy + ty), m3, m4, cy - m3 * (cx + tx) - m4 * (cy + ty)], dim=1)


def affine(images: torch.Tensor, matrix: torch.Tensor, mode: str = "nearest", fill: float | None = 0.0) -> torch.Tensor:
    """`F.affine` / `F.rotate` (expand=False) with one inverse matrix `[N, 6]` per sample: the
    output pixel centres mapped through the matrix (torchvision's `_affine_grid`, float32 as it
    is), `grid_sample` without corner alignment, outside points filled with `fill` (None: plain
    zero padding, torchvision's `fill=None`, which differs from 0 at bilinear borders)."""
    n, c, h, w = images.shape
    theta = matrix.to(images.dtype).view(n, 2, 3)
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=images.device, dtype=images.dtype)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=images.device, dtype=images.dtype)
    columns = theta.transpose(1, 2)  # [N, 3, 2], divided by the half sizes (Python numbers: no copy)
    r = torch.stack([columns[..., 0] / (0.5 * w), columns[..., 1] / (0.5 * h)], dim=-1)
    # torchvision's `base_grid.bmm(theta)` as x * row0 + y * row1 + row2, broadcast: the same
    # float32 values (tested against F.affine). Built as two [N, H, W] planes and handed to
    # grid_sample as a permuted view: sums whose inner size is W vectorise, sums whose inner
    # size is 2 (an [N, H, W, 2] grid) do not (2 cores, 224 px: 0.17 against 0.44 ms per image,
    # grid_sample included; a bmm was slower still)
    planes = (xs.view(1, 1, 1, w) * r[:, 0].view(n, 2, 1, 1) + ys.view(1, 1, h, 1) * r[:, 1].view(n, 2, 1, 1)) \
        + r[:, 2].view(n, 2, 1, 1)
    return _grid_sample_filled(images, planes.permute(0, 2, 3, 1), mode, fill)


def perspective(images: torch.Tensor, coeffs: torch.Tensor, mode: str = "bilinear",
                fill: float | None = 0.0) -> torch.Tensor:
    """`F.perspective` with coefficients `[N, 8]` per sample (output pixel (x, y) reads input
    ((a x + b y + c) / (g x + h y + 1), (d x + e y + f) / (g x + h y + 1)), pixel centres at
    +0.5): torchvision's `_perspective_grid` as batched matrix products in the image dtype, then
    the same filled `grid_sample` as `affine`."""
    n, c, h, w = images.shape
    k = coeffs.to(images.dtype)
    xs = torch.linspace(0.5, w - 0.5, steps=w, device=images.device, dtype=images.dtype)
    ys = torch.linspace(0.5, h - 0.5, steps=h, device=images.device, dtype=images.dtype)
    base = torch.stack(torch.broadcast_tensors(xs.view(1, w), ys.view(h, 1), torch.ones(1, 1, dtype=images.dtype,
                                                                                     device=images.device)), dim=-1)
    base = base.view(1, h * w, 3).expand(n, -1, -1)
    numerator = torch.stack([k[:, 0:3] / (0.5 * w), k[:, 3:6] / (0.5 * h)], dim=-1)  # [N, 3, 2]
    one = torch.ones_like(k[:, :1])
    denominator = torch.cat([k[:, 6:8], one], dim=1).unsqueeze(-1).expand(n, 3, 2)
    grid = base.bmm(numerator).div_(base.bmm(denominator)).sub_(1.0).view(n, h, w, 2)
    return _grid_sample_filled(images, grid, mode, fill)


def _grid_sample_filled(images: torch.Tensor, grid: torch.Tensor, mode: str, fill: float | None) -> torch.Tensor:
    """torchvision's `_apply_grid_transform`: `grid_sample` without corner alignment; points
    outside take `fill` (nearest: where the sampled mask is < 0.5; bilinear: blended by it), or
    plain zero padding for None."""
    c = images.shape[1]
    if fill is None:
        return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)
    with_mask = torch.cat([images, torch.ones_like(images[:, :1])], dim=1)
    out = F.grid_sample(with_mask, grid, mode=mode, padding_mode="zeros", align_corners=False)
    out, mask = out[:, :c], out[:, c:]
    if mode == "nearest":
        return torch.where(mask < 0.5, fill, out)
    return out.sub(fill).mul_(mask).add_(fill)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """`F.equalize` on float images: each channel's 256-level histogram equalised with PIL's
    lookup table (`lut[k] = (cdf[k-1] + step // 2) // step`, `step` = the pixels below the
    brightest level // 255), channels with `step == 0` left as they are. Levels are torchvision's
    float -> uint8 conversion (x * 255.999, floored) and back (/ 255). Batched, no host read; the
    counts in int32 and the table applied in float (2.4x faster than int64 at 224 px)."""
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
