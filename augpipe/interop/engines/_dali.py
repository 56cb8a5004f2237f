"""DALI's own operators, fed the batch through `external_source`.

Each op's operator is its `counterparts.dali(op, target)`: a function of DALI's data node
(`target.lib`: `nvidia.dali.fn`; `target.types`, `target.math`). Per-sample probabilities use
DALI's conditional execution (`target.when(p, f)`: `if fn.random.coin_flip(...)` inside a
pipeline built with `enable_conditionals=True`), the mechanism DALI documents for this. Colour
ops run on uint8 (`counterparts.dali_uint8`: DALI's colour operators assume the type's range),
the rest on float in [0, 1].

Checked where: the CPU path (`device="cpu"`, `device_id=None`) runs in CI; the GPU path
(`device="gpu"`, operators on the GPU, output through `feed_ndarray`) follows DALI's documentation
and runs only under `make gpu-check` on a machine with DALI and CUDA.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from augpipe.interop.engines._base import Target, Unsupported

KEY = "dali"


@dataclass
class DaliTarget(Target):
    """DALI's `fn` (`lib`), its `types` and `math`, and the per-sample draws translations share."""
    types: Any = None
    math: Any = None

    def uniform(self, lo: float, hi: float):
        """A per-sample U(lo, hi) argument; DALI rejects an empty range, so lo == hi is a constant."""
        return float(lo) if lo == hi else self.lib.random.uniform(range=[float(lo), float(hi)])

    def when(self, p: float, transform):
        """`transform` on the samples a coin of probability `p` picks (DALI's AutoGraph traces the `if`)."""
        def run(x):
            if self.lib.random.coin_flip(probability=float(p), dtype=self.types.BOOL):
                x = transform(x)
            return x
        return run


def build(policy, device: str = "cpu", batch_size: int = 256, seed: int = 0, num_threads: int = 2):
    import nvidia.dali.math as dmath
    from nvidia.dali import fn, pipeline_def, types

    on_gpu = device.startswith("cuda")
    for view in policy.views:
        seen_float = False
        for op in view.ops:
            if type(op).counterparts.dali_uint8 and seen_float:
                raise Unsupported(f"dali: {op.name} after a float-only op")
            seen_float |= not type(op).counterparts.dali_uint8

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=0 if on_gpu else None,
                  seed=seed, enable_conditionals=True, prefetch_queue_depth=1)
    def pipe():
        images = fn.external_source(name="images", layout="HWC", dtype=types.UINT8)
        if on_gpu:
            images = images.gpu()
        outs = []
        for view in policy.views:
            x, is_float = images, False
            target = DaliTarget("dali", fn, view.size, types=types, math=dmath)
            for op in view.ops:
                if not type(op).counterparts.dali_uint8 and not is_float:
                    x, is_float = fn.cast(x, dtype=types.FLOAT) * (1.0 / 255.0), True
                x = target.translate(KEY, op)(x)
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
