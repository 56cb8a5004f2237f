"""Policies: the ordered ops of each view, run on a batch with per-sample parameters.

`build_policy(spec, size=..., views=...)` is the one way to make a policy, from a preset name
(with optional `[overrides]`) or a custom spec string; see `augpipe.spec` for the grammar.
"""
from __future__ import annotations

import re
import time
import types
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch

from augpipe import kernels
from augpipe.cpu import compiled_cpu_kernels
from augpipe.ops import OPS, HorizontalFlip, Normalize, Op, RandomResizedCrop, Resize, SampleContext
from augpipe.presets import PRESETS
from augpipe.spec import SpecError, apply_overrides, describe, parse_chains, split_preset
from timekeep import TimeAccount

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


GATINGS = ("auto", "blend", "subset")


def check_images(images: torch.Tensor, *, sync_free: bool = False) -> None:
    """Reject what the pipeline cannot mean: wrong type, rank, channels, dtype or range.

    Type, rank, channels and dtype are static. The float range (and NaN) needs the data: with
    `sync_free=True` it is a device-side assert (`torch._assert_async`: no host read; on CUDA a
    bad batch stops the process with the message), else one host read (free on the CPU).
    """
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
    if not images.numel():
        return
    message = "float images must lie in [0, 1] (no NaN); pass uint8 images or divide 0-255 floats by 255"
    lo, hi = torch.aminmax(images)
    if sync_free:
        try:
            torch._assert_async((lo >= 0) & (hi <= 1), message)
        except RuntimeError:  # raised at once on the CPU; CUDA reports it asynchronously
            raise ValueError(message) from None
        return
    lo, hi = torch.stack([lo, hi]).tolist()  # one device sync, not two
    if not (lo >= 0.0 and hi <= 1.0):
        raise ValueError(f"{message}; got range [{lo:g}, {hi:g}]")


@dataclass
class View:
    """One view: output size and its ordered ops (the first op sets the size)."""
    size: tuple[int, int]
    ops: list[Op]


@dataclass
class _Group:
    """Views with the same size and ops: sampled and run as one batch of `len(views) * N` rows."""
    size: tuple[int, int]
    ops: list[Op]
    views: list[int]


ViewParams = list[dict]  # one dict per op: {"op": name, **[N, ...] tensors}


class Policy:
    """`views = policy(images, generator=g)` = `policy.apply(images, policy.sample(images, generator=g))`.

    `sample` draws every per-sample parameter (small `[N, ...]` tensors on the images' device;
    `return_params=True` hands them back, one list of `{"op": name, ...}` dicts per view).
    `apply` is pure tensor code with fixed shapes. Per-sample gating (`p < 1`) is the policy's:
    - `gating="blend"`: every kernel runs on every row and `torch.where` keeps the selected rows.
      No host reads and fixed shapes, so `torch.compile(policy.apply, fullgraph=True)` and CUDA
      graphs take it; the CUDA default.
    - `gating="subset"`: kernels run on the selected rows only (`nonzero` + `index_select`). On
      the CPU a host read is free and skipping rows is cheaper; the CPU default.
    - `gating="auto"`: blend on CUDA, subset elsewhere.
    Both give the same views for the same parameters (tested). Views with the same size and ops
    (e.g. SimCLR's two) are run as one batch: half the kernel launches.

    `compile=True` runs `apply` through `torch.compile(fullgraph=True)` with blend gating;
    `compile="auto"` does so on CUDA only (see README for the measurements behind it).
    `cpu_threads="adapt"` (default) lets the CPU path pick torch's intra-op thread count between
    1 and the count it found, by measured speed (`ThreadChooser`). The views do not depend on it
    (tested), but it is process-wide: other code's float reductions may then vary with the load.
    `"keep"` leaves it alone (ssl_train keeps it: it pins the count itself).
    With `time_ops=True`, seconds per op (by name, summed over views) accumulate in
    `op_seconds()`; on CUDA they are CUDA events read once, in `op_seconds()`. A compiled apply
    is timed as one entry, `compiled`.
    """

    def __init__(self, views: list[View], *, name: str = "", dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, time_ops: bool = False, gating: str = "auto",
                 compile: bool | str = "auto", cpu_threads: str = "adapt"):
        if cpu_threads not in ("adapt", "keep"):
            raise ValueError(f"cpu_threads must be 'adapt' or 'keep', got {cpu_threads!r}")
        if gating not in GATINGS:
            raise ValueError(f"gating must be one of {', '.join(GATINGS)}, got {gating!r}")
        if compile not in (True, False, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
        self.views = views
        self.name = name
        self.dtype = dtype
        self.channels_last = channels_last
        self.time_ops = time_ops
        self.gating = gating
        self.compile = compile
        self.cpu_threads = cpu_threads
        self.groups: list[_Group] = []
        for i, view in enumerate(views):
            group = next((g for g in self.groups if g.size == view.size and g.ops == view.ops), None)
            if group is None:
                self.groups.append(_Group(view.size, view.ops, [i]))
            else:
                group.views.append(i)
        self._log: TimeAccount | None = None
        self._compiled = None
        self._threads = ThreadChooser() if cpu_threads == "adapt" else None

    def __len__(self) -> int:
        return len(self.views)

    def with_options(self, **changes) -> "Policy":
        """The same views with some constructor options changed (`compile`, `gating`, ...)."""
        options = dict(name=self.name, dtype=self.dtype, channels_last=self.channels_last, time_ops=self.time_ops,
                       gating=self.gating, compile=self.compile, cpu_threads=self.cpu_threads)
        return Policy(self.views, **{**options, **changes})

    def __repr__(self) -> str:
        sizes = "+".join(f"{v.size[0]}x{v.size[1]}" for v in self.views)
        return f"Policy({self.name!r}, views={sizes}, spec={self.spec!r})"

    @property
    def spec(self) -> str:
        return describe([v.ops for v in self.views])

    def gating_for(self, device: torch.device) -> str:
        """The gating used for images on `device` (compiled policies always blend)."""
        if self.compiles_on(device):
            return "blend"
        if self.gating == "auto":
            return "blend" if device.type == "cuda" else "subset"
        return self.gating

    def compiles_on(self, device: torch.device) -> bool:
        return self.compile is True or (self.compile == "auto" and device.type == "cuda")

    def op_seconds(self) -> dict[str, float]:
        return self._log.seconds if self._log else {}

    def reset_timing(self) -> None:
        if self._log:
            self._log.reset()

    # --- the contract ---------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None,
                 return_params: bool = False):
        params = self.sample(images, generator=generator)
        views = self.apply(images, params)
        return (views, params) if return_params else views

    def sample(self, images: torch.Tensor, generator: torch.Generator | None = None) -> list[ViewParams]:
        """Every op's per-sample parameters for the whole batch, before any pixel is touched.

        Views of one group are drawn together (`len(views) * N` rows), then split per view.
        """
        check_images(images, sync_free=self.gating_for(images.device) == "blend")
        n, device = images.shape[0], images.device
        per_view: list[ViewParams] = [[] for _ in self.views]
        for group in self.groups:
            rows, hw, drawn = n * len(group.views), tuple(images.shape[-2:]), []
            for op in group.ops:
                drawn.append(op.sample(rows, SampleContext(generator, device, hw, group.size)))
                if op.changes_size:
                    hw = group.size
            for k, v in enumerate(group.views):
                per_view[v] = [{"op": op.name, **{key: t[k * n:(k + 1) * n] for key, t in p.items()}}
                               for op, p in zip(group.ops, drawn)]
        return per_view

    def apply(self, images: torch.Tensor, params: list[ViewParams]) -> list[torch.Tensor]:
        """The views of `images` for `params` (from `sample`): pure, fixed output shapes."""
        if self.time_ops and (self._log is None or self._log.device != images.device):
            self._log = TimeAccount(images.device)
        if self.compiles_on(images.device) and not torch.compiler.is_compiling():
            if self._compiled is None:
                self._compiled = torch.compile(own_code(self._apply), fullgraph=True)
            if self.time_ops:
                with self._log.phase("compiled"):
                    return self._compiled(images, params)
            return self._compiled(images, params)
        return self._apply(images, params)

    # --- running kernels ----------------------------------------------------------------
    def _apply(self, images: torch.Tensor, params: list[ViewParams]) -> list[torch.Tensor]:
        gating = self.gating_for(images.device)
        n = images.shape[0]
        outputs: list[torch.Tensor | None] = [None] * len(self.views)
        for group in self.groups:
            count = len(group.views)
            joined = [{key: _join([params[v][i][key] for v in group.views])
                       for key in params[group.views[0]][i] if key != "op"}
                      for i in range(len(group.ops))]
            if gating == "subset" and not torch.compiler.is_compiling():
                y = self._run_chunks(group, images, joined)
            else:
                y = self._run(group, _repeat_rows(images, count), joined, gating, self._log)
            for k, v in enumerate(group.views):
                outputs[v] = y[k * n:(k + 1) * n]
        return outputs

    def _run_chunks(self, group: _Group, images: torch.Tensor, params: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """CPU: the group's rows in cache-sized chunks (never across views), with torch's intra-op
        thread count adapted by `ThreadChooser` (robust when other processes share the cores)."""
        n, count = images.shape[0], len(group.views)
        rows = chunk_rows(images)
        out = torch.empty((n * count, 3, *group.size), dtype=self.dtype, device=images.device,
                          memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        threads = self._threads.choose() if self._threads else None
        t0 = time.perf_counter()
        # compile="auto" on the CPU: the hue inside runs as inductor's fused loop (augpipe.cpu)
        with compiled_cpu_kernels(self.compile == "auto"):
            for k in range(count):
                for start in range(0, n, rows):
                    stop = min(start + rows, n)
                    sl = slice(k * n + start, k * n + stop)
                    out[sl] = self._run(group, images[start:stop], [{key: t[sl] for key, t in p.items()} for p in params],
                                        "subset", self._log)
        if self._threads:
            self._threads.record(threads, n * count / max(time.perf_counter() - t0, 1e-9))
        return out

    def _run(self, group: _Group, images: torch.Tensor, params: list[dict[str, torch.Tensor]],
             gating: str, account: TimeAccount | None) -> torch.Tensor:
        """The group's kernels on `images` (rows matching `params`); per-op time into `account`."""
        y = images.to(torch.float32).div_(255.0) if images.dtype == torch.uint8 else images.float()
        owned = y is not images  # never write into the caller's tensor
        timed = account is not None and not torch.compiler.is_compiling()
        ops, i = group.ops, 0
        while i < len(ops):
            op, p, before = ops[i], params[i], y
            fused = _fuses_flip(ops, i)  # crop then flip: one kernel (the flip reads the grid backwards)
            name = f"{op.name}+flip" if fused else op.name
            with account.phase(name) if timed else nullcontext():
                if fused:
                    flip = params[i + 1]["apply"] if ops[i + 1].p > 0 else None
                    y = kernels.resized_crop(y, p["boxes"], group.size, flip=flip)
                else:
                    y = _gate(op, y, p, group.size, gating, owned)
            owned = owned if y is before else y.is_contiguous()  # a broadcast view is not writable
            i += 2 if fused else 1
        y = y.to(self.dtype)
        return y.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)


def own_code(fn):
    """`fn` (a function or a bound method) as a copy with its own code object. torch.compile
    caches graphs, and counts recompiles against a limit of 8 before falling back to eager, per
    code object; every policy (and every engine chain) is a different graph, so each gets its
    own cache instead of evicting the others' or silently running eager."""
    func = getattr(fn, "__func__", fn)
    copy = types.FunctionType(func.__code__.replace(), func.__globals__, func.__name__, func.__defaults__,
                              func.__closure__)
    return types.MethodType(copy, fn.__self__) if hasattr(fn, "__self__") else copy


def _fuses_flip(ops: list[Op], i: int) -> bool:
    """A crop (a size-changing op) directly followed by a flip runs as one kernel."""
    return (isinstance(ops[i], (RandomResizedCrop, Resize)) and i + 1 < len(ops)
            and isinstance(ops[i + 1], HorizontalFlip))


def _join(parts: list[torch.Tensor]) -> torch.Tensor:
    """The group's rows of one parameter. `sample` hands out each view's rows as consecutive
    slices of one tensor: give that tensor back instead of copying it (the noise parameter is as
    large as the batch); anything else (or under torch.compile) is concatenated."""
    if len(parts) == 1:
        return parts[0]
    base = parts[0]._base
    if (not torch.compiler.is_compiling() and base is not None and base.is_contiguous()
            and base.shape == (sum(p.shape[0] for p in parts), *parts[0].shape[1:])):
        row_bytes = base[0].numel() * base.element_size()
        offset, consecutive = base.data_ptr(), True
        for p in parts:
            consecutive &= p._base is base and p.data_ptr() == offset
            offset += p.shape[0] * row_bytes
        if consecutive:
            return base
    return torch.cat(parts)


def _repeat_rows(images: torch.Tensor, count: int) -> torch.Tensor:
    """`count` copies of the batch stacked on dim 0 (one copy kernel; none for count 1)."""
    if count == 1:
        return images
    return images.unsqueeze(0).expand(count, *images.shape).reshape(count * images.shape[0], *images.shape[1:])


def _gate(op: Op, images: torch.Tensor, params: dict[str, torch.Tensor], size, gating: str,
          owned: bool) -> torch.Tensor:
    """Run `op` on the rows whose `apply` mask is set; the others pass through unchanged."""
    if not op.gated or op.p >= 1.0:  # static: every row
        return op.kernel(images, params, size, inplace=owned and gating == "subset")
    if op.p <= 0.0:
        return images
    mask = params["apply"]
    if gating == "blend":
        return torch.where(mask.view(-1, 1, 1, 1), op.kernel(images, params, size, inplace=False), images)
    # subset: only the selected rows are computed (on the CPU, the nonzero costs nothing)
    idx = mask.nonzero().squeeze(1)
    count = idx.numel()
    if count == 0:
        return images
    if count == images.shape[0]:
        return op.kernel(images, params, size, inplace=owned)
    sub = {k: v.index_select(0, idx) for k, v in params.items()}
    result = op.kernel(images.index_select(0, idx), sub, size, inplace=True)
    target = images if owned else images.clone()
    return target.index_copy_(0, idx, result)


# On CPU, a view's kernels run on chunks of rows small enough to stay in cache: several
# elementwise passes over a 38 MB batch (64 x 224 px) are bound by memory bandwidth, the same
# passes over a 16 MB chunk less so (measured with the tuned allocator, `augpipe.cpu`, simclr
# 224 px b64: 1 MB chunks 121 img/s, 4 MB 230, 16 MB 395, 64 MB 302-399, whole batch 192-207). Parameters are
# still drawn for the whole batch first, so chunking changes no sampled value. On CUDA and under
# blend gating the whole group is one chunk (fewer, larger kernels).
CPU_CHUNK_BYTES = 16 << 20


class ThreadChooser:
    """Picks torch's intra-op thread count for augpipe's CPU path: all threads, or one.

    A policy call is ~100-250 small ops, each a parallel region where the threads meet. On quiet
    cores all threads are fastest; when other processes share the cores (loader workers, other
    jobs), a thread the OS puts aside makes its partner wait at every region, and one thread is
    faster. Measured (simclr 32 px b256, 2 cores, two busy processes): 2 threads 17.6k -> 5.2k
    img/s; 1 thread 12.2k -> 8.0k. So the chooser keeps a moving average of rows/s per setting,
    uses the faster, and retries the other after `explore_every` calls, twice as long after each
    try that loses (up to `max_interval`): it follows the load as it comes and goes. It sets the process-wide count and leaves it (switching back and forth
    every call is itself slow under load: 1 thread with a switch per call fell to 5.7k); the
    most it sets is what torch had when the chooser first ran. The first call at each setting is
    a warm-up and not recorded: it carries one-off costs (compiling the CPU hue for that thread
    count, growing the heap) that made one slow first call pin the wrong setting for good.
    `Policy(cpu_threads="keep")` turns it off.
    """

    def __init__(self, explore_every: int = 16, smoothing: float = 0.5, max_interval: int = 256):
        self.explore_every, self.smoothing, self.max_interval = explore_every, smoothing, max_interval
        self.rate: dict[int, float] = {}
        self.calls, self.most = 0, 0
        self.interval, self.next_explore = explore_every, explore_every
        self.exploring = False
        self.warmed: set[int] = set()

    def choose(self) -> int:
        """The thread count for this call, set in torch if it differs."""
        self.most = max(self.most, torch.get_num_threads())
        options = [self.most, 1] if self.most > 1 else [1]
        self.calls += 1
        untried = [t for t in options if t not in self.rate]
        self.exploring = False
        if untried:
            threads = untried[0]
        else:
            threads = self.best(options)
            if len(options) > 1 and self.calls >= self.next_explore:
                threads, self.exploring = next(t for t in options if t != threads), True
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return threads

    def best(self, options: list[int]) -> int:
        return max(options, key=lambda t: self.rate[t])

    def record(self, threads: int, rows_per_s: float) -> None:
        if threads not in self.warmed:
            self.warmed.add(threads)
            return
        old = self.rate.get(threads)
        self.rate[threads] = rows_per_s if old is None else old + self.smoothing * (rows_per_s - old)
        if self.exploring:  # a try of the other setting: back off while it keeps losing
            lost = self.best(list(self.rate)) != threads
            self.interval = min(2 * self.interval, self.max_interval) if lost else self.explore_every
            self.next_explore = self.calls + self.interval


def chunk_rows(images: torch.Tensor) -> int:
    if images.device.type != "cpu":
        return 1 << 62
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
                 channels_last: bool = False, time_ops: bool = False, gating: str = "auto",
                 compile: bool | str = "auto", cpu_threads: str = "adapt") -> Policy:
    """Build a policy from a preset name or a spec string.

    spec:      `list_policies()` name, optionally `name[op.key=value,...]`, or a spec string.
    size:      output side (or (h, w)) of every view when `views` is a count.
    views:     a count (chains cycle over views: view i uses chain i % len(chains)), or a
               multi-crop string `"2x224+6x96@0.05:0.14"` (`@LO:HI` overrides the crop scale).
    normalize: `imagenet` or `cifar10` appends per-channel standardisation to every view.
    dtype:     output dtype (float32, bfloat16, float16); computation is float32.
    gating:    how `p < 1` is applied per sample: `blend`, `subset` or `auto` (see `Policy`).
    compile:   torch.compile `apply` (True, False, or `auto`: on CUDA only).
    cpu_threads: `adapt` (CPU: pick 1 or all intra-op threads by measured speed) or `keep`.
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
                  channels_last=channels_last, time_ops=time_ops, gating=gating, compile=compile,
                  cpu_threads=cpu_threads)
