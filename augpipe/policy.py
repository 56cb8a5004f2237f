"""Policies: the ordered ops of each view, run on a batch with per-sample parameters.

`build_policy(spec, size=..., views=...)` is the one way to make a policy, from a preset name
(with optional `[overrides]`) or a custom spec string; see `augpipe.spec` for the grammar.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch

from augpipe.ops import OPS, Normalize, Op, RandomResizedCrop, Resize, SampleContext
from augpipe.presets import PRESETS
from augpipe.spec import SpecError, apply_overrides, describe, parse_chains, split_preset
from timekeep import IntervalLog

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def check_images(images: torch.Tensor) -> None:
    """Reject what the pipeline cannot mean: wrong type, rank, channels, dtype or range."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor [N,3,H,W], got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape [N,3,H,W], got rank {images.dim()} shape {tuple(images.shape)}")
    if images.shape[1] != 3:
        raise ValueError(f"images must have 3 channels in dim 1 ([N,3,H,W]), got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0-255) or float (0-1), got dtype {images.dtype}")
    if images.numel():
        lo, hi = torch.stack(torch.aminmax(images)).tolist()  # one device sync, not two
        if hi > 1.0 or lo < 0.0:
            raise ValueError(f"float images must lie in [0, 1], got range [{lo:g}, {hi:g}]; "
                             "pass uint8 images or divide 0-255 floats by 255")


@dataclass
class View:
    """One view: output size and its ordered ops (the first op sets the size)."""
    size: tuple[int, int]
    ops: list[Op]


class Policy:
    """Callable: `policy(images, generator=None, return_params=False)`.

    Returns one float tensor `[N, 3, h, w]` per view (and, with `return_params`, a list per view
    of `{"op": name, **per-sample tensors}` dicts). With `time_ops=True`, the seconds spent in each
    op (by op name, summed over views) accumulate in `op_seconds()`; on CUDA they are measured with
    CUDA events, so timing costs one synchronisation per call, not one per op.
    """

    def __init__(self, views: list[View], *, name: str = "", dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, time_ops: bool = False):
        self.views = views
        self.name = name
        self.dtype = dtype
        self.channels_last = channels_last
        self.time_ops = time_ops
        self._log: IntervalLog | None = None

    def __len__(self) -> int:
        return len(self.views)

    def __repr__(self) -> str:
        sizes = "+".join(f"{v.size[0]}x{v.size[1]}" for v in self.views)
        return f"Policy({self.name!r}, views={sizes}, spec={self.spec!r})"

    @property
    def spec(self) -> str:
        return describe([v.ops for v in self.views])

    def op_seconds(self) -> dict[str, float]:
        return self._log.totals() if self._log else {}

    def reset_timing(self) -> None:
        if self._log:
            self._log.reset()

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None,
                 return_params: bool = False):
        check_images(images)
        n, in_hw = images.shape[0], tuple(images.shape[-2:])
        if self.time_ops and (self._log is None or self._log.device != images.device):
            self._log = IntervalLog(images.device)
        rows = chunk_rows(images)
        outputs, all_params = [], []
        for view in self.views:
            params = self._sample(view, n, generator, images.device, in_hw)
            if rows >= n:
                out = self._run(view, images, params)
            else:
                out = None
                for start in range(0, n, rows):
                    sl = slice(start, start + rows)
                    y = self._run(view, images[sl], [{k: v[sl] for k, v in p.items()} for p in params])
                    if out is None:
                        out = torch.empty((n, *y.shape[1:]), dtype=self.dtype, device=y.device,
                                          memory_format=torch.channels_last if self.channels_last
                                          else torch.contiguous_format)
                    out[sl] = y
            outputs.append(out)
            if return_params:
                all_params.append([{"op": op.name, **p} for op, p in zip(view.ops, params)])
        return (outputs, all_params) if return_params else outputs

    @staticmethod
    def _sample(view: View, n: int, generator, device, in_hw) -> list[dict[str, torch.Tensor]]:
        """Every op's per-sample parameters for the whole batch, before any pixel is touched."""
        params, hw = [], in_hw
        for op in view.ops:
            params.append(op.sample(n, SampleContext(generator, device, hw, view.size)))
            if op.changes_size:
                hw = view.size
        return params

    def _run(self, view: View, images: torch.Tensor, params: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """The view's kernels on `images` (a whole batch or a chunk of rows)."""
        y = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        owned = y.data_ptr() != images.data_ptr()  # never write into the caller's tensor
        for op, p in zip(view.ops, params):
            if op.inplace and not owned:
                y, owned = y.clone(), True
            before = y
            if self.time_ops:
                with self._log.interval(op.name):
                    y = op.apply(y, p)
            else:
                y = op.apply(y, p)
            owned = owned or y is not before
        y = y.to(self.dtype)
        if self.channels_last:
            y = y.contiguous(memory_format=torch.channels_last)
        return y


# On CPU, a view's kernels run on chunks of rows small enough to stay in cache: several
# elementwise passes over a 38 MB batch (64 x 224 px) are bound by memory bandwidth, the same
# passes over an 8 MB chunk mostly are not (measured: 1.2x to 2x faster at 224 px). Parameters are
# still drawn for the whole batch first, so chunking changes no sampled value. On CUDA the
# whole batch is one chunk (fewer, larger kernel launches).
CPU_CHUNK_BYTES = 8 << 20


def chunk_rows(images: torch.Tensor) -> int:
    if images.device.type != "cpu":
        return images.shape[0]
    per_row = 4 * images[0].numel()
    return max(1, CPU_CHUNK_BYTES // per_row)


def list_policies() -> list[str]:
    """Names of the built-in policies."""
    return sorted(PRESETS)


def resolve_chains(spec: str):
    """A preset name (with optional `[overrides]`) or a custom spec -> one op list per chain."""
    name, overrides = split_preset(spec)
    if name in PRESETS:
        chains = parse_chains(PRESETS[name])
        return apply_overrides(chains, overrides, name) if overrides else chains
    if overrides is not None:
        raise SpecError(f"unknown policy {name!r}; valid policies: {', '.join(list_policies())}")
    if re.fullmatch(r"[\w-]+", spec.strip()) and spec.strip() not in OPS:
        raise SpecError(f"unknown policy or op {spec.strip()!r}; valid policies: {', '.join(list_policies())}; "
                        f"valid ops: {', '.join(sorted(OPS))}")
    return parse_chains(spec)


_VIEW_RE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*(?:@\s*([\d.]+)\s*:\s*([\d.]+))?\s*$")


def parse_views(views: int | str, size: int | tuple[int, int]) -> list[tuple[tuple[int, int], tuple[float, float] | None]]:
    """`2` -> two views of `size`; `"2x224+6x96@0.05:0.14"` -> multi-crop groups (size, crop scale)."""
    if isinstance(views, int) or (isinstance(views, str) and views.strip().isdigit()):
        count = int(views)
        if count < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        hw = (size, size) if isinstance(size, int) else tuple(size)
        return [(hw, None)] * count
    result = []
    for group in str(views).split("+"):
        match = _VIEW_RE.match(group)
        if not match:
            raise ValueError(f"views: cannot parse {group.strip()!r}; expected COUNTxSIZE[@LO:HI], "
                             "e.g. '2x224+6x96@0.05:0.14'")
        count, side = int(match.group(1)), int(match.group(2))
        scale = (float(match.group(3)), float(match.group(4))) if match.group(3) else None
        if count < 1 or side < 1:
            raise ValueError(f"views: count and size must be >= 1 in {group.strip()!r}")
        result += [((side, side), scale)] * count
    return result


def build_policy(spec: str, *, size: int | tuple[int, int], views: int | str = 2,
                 normalize: str | None = None, dtype: torch.dtype | str = torch.float32,
                 channels_last: bool = False, time_ops: bool = False) -> Policy:
    """Build a policy from a preset name or a spec string.

    spec:      `list_policies()` name, optionally `name[op.key=value,...]`, or a spec string.
    size:      output side (or (h, w)) of every view when `views` is a count.
    views:     a count (chains cycle over views: view i uses chain i % len(chains)), or a
               multi-crop string `"2x224+6x96@0.05:0.14"` (`@LO:HI` overrides the crop scale).
    normalize: `imagenet` or `cifar10` appends per-channel standardisation to every view.
    dtype:     output dtype (float32, bfloat16, float16); computation is float32.
    """
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        dtype = _DTYPES[dtype]
    chains = resolve_chains(spec)
    built = []
    for i, (hw, scale) in enumerate(parse_views(views, size)):
        ops = list(chains[i % len(chains)])
        if not any(op.changes_size for op in ops):
            ops.insert(0, Resize())
        if scale is not None:
            if not any(isinstance(op, RandomResizedCrop) for op in ops):
                raise ValueError(f"views: a crop scale @{scale[0]:g}:{scale[1]:g} needs a policy with rrc")
            ops = [replace(op, scale=scale) if isinstance(op, RandomResizedCrop) else op for op in ops]
        if normalize is not None:
            norm = Normalize(stats=normalize)
            norm.validate()
            ops.append(norm)
        built.append(View(size=hw, ops=ops))
    name, _ = split_preset(spec)
    return Policy(built, name=name if name in PRESETS else "custom", dtype=dtype,
                  channels_last=channels_last, time_ops=time_ops)
