"""DALI's own operators, fed the batch through `external_source`.

`TRANSLATE` (= `UINT8_OPS` + `FLOAT_OPS`): op name -> `(op, x, size, fn, types, dmath) -> x`.
Per-sample probabilities use DALI's conditional execution (`if fn.random.coin_flip(...)` inside a
pipeline built with `enable_conditionals=True`), the mechanism DALI documents for this. Colour
ops run on uint8 (DALI's colour operators assume the type's range), the rest on float in [0, 1].

Checked where: the CPU path (`device="cpu"`, `device_id=None`) runs in CI; the GPU path
(`device="gpu"`, operators on the GPU, output through `feed_ndarray`) follows DALI's documentation
and runs only under `make gpu-check` on a machine with DALI and CUDA.
"""
from __future__ import annotations

import numpy as np
import torch

from augpipe.engines import Unsupported


def _uniform(fn, lo, hi):
    """A per-sample U(lo, hi) argument; DALI rejects an empty range, so lo == hi is a constant."""
    return float(lo) if lo == hi else fn.random.uniform(range=[float(lo), float(hi)])


def _coin(fn, types, p):
    return fn.random.coin_flip(probability=float(p), dtype=types.BOOL)


# Each translation is `(op, x, size, fn, types, dmath) -> x`. DALI's conditionals (`if coin:`)
# are traced by its AutoGraph, so each gated op is its own small function.
def _rrc(op, x, size, fn, types, dmath):
    if op.p < 1:
        raise Unsupported("dali: rrc with p < 1")
    return fn.random_resized_crop(x, size=list(size), random_area=list(op.scale),
                                  random_aspect_ratio=list(op.ratio), antialias=False)


def _jitter(op, x, size, fn, types, dmath):
    if _coin(fn, types, op.p):
        x = fn.color_twist(
            x,
            brightness=_uniform(fn, max(0.0, 1 - op.brightness), 1 + op.brightness),
            contrast=_uniform(fn, max(0.0, 1 - op.contrast), 1 + op.contrast),
            saturation=_uniform(fn, max(0.0, 1 - op.saturation), 1 + op.saturation),
            hue=_uniform(fn, -360.0 * op.hue, 360.0 * op.hue))
    return x


def _gray(op, x, size, fn, types, dmath):
    if _coin(fn, types, op.p):
        x = fn.color_twist(x, saturation=0.0)
    return x


def _blur(op, x, size, fn, types, dmath):
    if _coin(fn, types, op.p):
        x = fn.gaussian_blur(x, window_size=op.kernel_size(size), sigma=_uniform(fn, *op.sigma))
    return x


def _solarize(op, x, size, fn, types, dmath):
    if _coin(fn, types, op.p):
        x = x + (x >= op.threshold) * (1.0 - 2.0 * x)
    return x


def _noise(op, x, size, fn, types, dmath):
    if _coin(fn, types, op.p):
        x = dmath.clamp(fn.noise.gaussian(x, stddev=_uniform(fn, *op.std)), 0.0, 1.0)
    return x


def _normalize(op, x, size, fn, types, dmath):
    mean, std = op.mean_std()
    return fn.crop_mirror_normalize(x, mean=list(mean), std=list(std), output_layout="HWC")


# Colour ops run on uint8 (DALI's colour operators assume the type's range), the rest on float.
UINT8_OPS = {
    "rrc": _rrc,
    "resize": lambda op, x, size, fn, types, dmath: fn.resize(x, size=list(size), antialias=False),
    "flip": lambda op, x, size, fn, types, dmath: fn.flip(x, horizontal=fn.random.coin_flip(probability=float(op.p))),
    "jitter": _jitter,
    "gray": _gray,
    "blur": _blur,
}
FLOAT_OPS = {
    "solarize": _solarize,
    "noise": _noise,
    "normalize": _normalize,
    "identity": lambda op, x, size, fn, types, dmath: x,
}
TRANSLATE = {**UINT8_OPS, **FLOAT_OPS}


def build(policy, device: str = "cpu", batch_size: int = 256, seed: int = 0, num_threads: int = 2):
    from nvidia.dali import fn, pipeline_def, types
    import nvidia.dali.math as dmath

    on_gpu = device.startswith("cuda")
    for view in policy.views:
        seen_float = False
        for op in view.ops:
            if op.name in UINT8_OPS and seen_float:
                raise Unsupported(f"dali: {op.name} after a float-only op")
            seen_float |= op.name not in UINT8_OPS

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=0 if on_gpu else None,
                  seed=seed, enable_conditionals=True, prefetch_queue_depth=1)
    def pipe():
        images = fn.external_source(name="images", layout="HWC", dtype=types.UINT8)
        if on_gpu:
            images = images.gpu()
        outs = []
        for view in policy.views:
            x, is_float = images, False
            for op in view.ops:
                if op.name not in UINT8_OPS and not is_float:
                    x, is_float = fn.cast(x, dtype=types.FLOAT) * (1.0 / 255.0), True
                x = TRANSLATE[op.name](op, x, view.size, fn, types, dmath)
            if not is_float:
                x = fn.cast(x, dtype=types.FLOAT) * (1.0 / 255.0)
            outs.append(fn.transpose(x, perm=[2, 0, 1]))
        return tuple(outs)

    built = {}

    def run(images: torch.Tensor, generator=None):
        n = images.shape[0]
        if n not in built:
            p = pipe(batch_size=n)
            p.build()
            built[n] = p
        p = built[n]
        hwc = images.permute(0, 2, 3, 1).contiguous()
        if on_gpu:
            p.feed_input("images", [t for t in hwc])  # DALI accepts CUDA tensors via __cuda_array_interface__
        else:
            p.feed_input("images", [t.numpy() for t in hwc.cpu()])
        outs = p.run()
        return [_to_torch(o, images.device) for o in outs]
    return run


def _to_torch(tensor_list, device):
    if hasattr(tensor_list, "as_cpu") and device.type == "cuda":
        from nvidia.dali.plugin.pytorch import feed_ndarray
        dense = tensor_list.as_tensor()
        out = torch.empty(dense.shape(), dtype=torch.float32, device=device)
        feed_ndarray(dense, out)
        return out
    return torch.from_numpy(np.asarray(tensor_list.as_array()))
