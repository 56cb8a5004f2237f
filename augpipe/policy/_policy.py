"""`Policy`: the contract between a batch and its views: `sample`, then `apply` (`__call__` = both).

`build_policy` (`augpipe.spec`) is the one way to make one from a name or a spec string,
`from_torchvision` (`augpipe.interop`) from a torchvision pipeline. How a policy runs is spread
over one private module of this package per concern: `_grouping` (views sharing ops run as one
batch), `_chain` (one group's ops in order, through the ops' gating rule), `_fusion` (crop+flip
as one kernel), `_chunking` (the CPU path's chunks and threads), `_compiling` (torch.compile),
`_cpu` (the compiled CPU hue), `_options` (`PolicyOptions`). See docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import dataclasses
from contextlib import nullcontext

import torch

from _augpipe_shared.timing import TimeAccount
from augpipe.ops import ApplyContext, SampleContext, describe
from augpipe.policy._chain import Output, run_chain
from augpipe.policy._chunking import OutputBuffers, ThreadChooser, run_in_chunks
from augpipe.policy._compiling import LazyCompiled
from augpipe.policy._cpu import CompiledHue
from augpipe.policy._grouping import View, ViewGroup, chain_sizes, group_views, join_rows, repeat_rows
from augpipe.policy._options import PolicyOptions
from augpipe.policy._targets import Targets, check_targets, move_targets

ViewParams = list[dict]  # one dict per op: {"op": name, **[N, ...] tensors}


def check_images(images: torch.Tensor, *, sync_free: bool = False) -> None:
    """Reject what the pipeline cannot mean: wrong type, rank, channels, dtype or range.

    Type, rank, channels and dtype are static. The float range (and NaN) needs the data: with
    `sync_free=True` it is a device-side assert (`torch._assert_async`: no host read; on CUDA a
    bad batch stops the process with the message), else one host read (free on the CPU).

    Args:
        images: A batch `[N, C, H, W]` or clips `[N, T, C, H, W]`, uint8 or float in [0, 1].
        sync_free: Check the float range on the device, without a host read.

    Returns:
        None; the batch is fine.

    Raises:
        TypeError: Not a tensor, or an unsupported dtype.
        ValueError: A wrong rank or channel count, or floats outside [0, 1] or NaN.
    """
    if not isinstance(images, torch.Tensor):  # a numpy batch: torch.from_numpy(x).permute(0, 3, 1, 2)
        raise TypeError(f"images must be a torch.Tensor [N,3,H,W], got {type(images).__name__} "
                        "(a numpy array [N,H,W,3]: torch.from_numpy(array).permute(0, 3, 1, 2))")
    if images.dim() not in (4, 5):
        raise ValueError(f"images must have shape [N,3,H,W] (or video clips [N,T,3,H,W]), got rank {images.dim()} "
                         f"shape {tuple(images.shape)}")
    if images.shape[-3] != 3:
        where = "dim 1 ([N,3,H,W])" if images.dim() == 4 else "dim 2 ([N,T,3,H,W])"
        raise ValueError(f"images must have 3 channels in {where}, got shape {tuple(images.shape)}")
    if images.shape[-2] < 1 or images.shape[-1] < 1:
        raise ValueError(f"images must be at least 1x1 pixels, got shape {tuple(images.shape)}")
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


def op_sizes(group: ViewGroup, in_size: tuple[int, int]) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Each op's `out_size` (the size it makes, for an op that changes it, else the view's) and
    the view's."""
    *sizes, final = chain_sizes(group.ops, in_size, group.size)
    return [size if op.changes_size else final for op, size in zip(group.ops, sizes)], final


def _view_rows(t: torch.Tensor, k: int, rows: int) -> torch.Tensor:
    """View `k`'s rows of a group's parameter (views drawn together, `rows` each, view after view)."""
    return t[k * rows:(k + 1) * rows]


def _frame_rows(t: torch.Tensor, frames: int) -> torch.Tensor:
    """A per-clip parameter `[N, ...]` as per-frame rows `[N * frames, ...]` (each clip's row
    repeated for its frames; an expand, no host read)."""
    return t.unsqueeze(1).expand(t.shape[0], frames, *t.shape[1:]).flatten(0, 1)


class Policy:
    """`views = policy(images, generator=g)` = `policy.apply(images, policy.sample(images, generator=g))`.

    `sample` draws every per-sample parameter (small `[N, ...]` tensors on the images' device;
    `return_params=True` hands them back, one list of `{"op": name, ...}` dicts per view).
    `apply` is pure tensor code with fixed shapes; per-sample gating (`p < 1`) is the policy's
    (`augpipe.ops.gate`), blend or subset by `options.gating`, the same views either way.
    `options` (`PolicyOptions`) say how it runs; keyword arguments change them. With
    `time_ops=True`, seconds per op (by name, summed over views) accumulate in `op_seconds()`
    (CUDA events, read there); a compiled apply is timed as one entry, `compiled`.
    """

    def __init__(self, views: list[View], options: PolicyOptions | None = None, **changes):
        self.views = views
        self.options = dataclasses.replace(options or PolicyOptions(), **changes)
        self.groups: list[ViewGroup] = group_views(views)
        self._log: TimeAccount | None = None
        self._compiled = LazyCompiled(self._apply)
        self._threads = ThreadChooser() if self.options.cpu_threads == "adapt" else None
        self._hue = CompiledHue(enabled=self.options.compile == "auto")
        self._outputs = OutputBuffers()  # the CPU path's output batches, reused when free

    def __len__(self) -> int:
        return len(self.views)

    @property
    def name(self) -> str:
        return self.options.name

    def with_options(self, **changes) -> "Policy":
        """The same views with some options changed (`compile`, `gating`, ...)."""
        return type(self)(self.views, dataclasses.replace(self.options, **changes))

    def for_input_size(self, in_size: tuple[int, int]) -> "Policy":
        """This policy with every view's size stated: views that keep the input's size get
        `in_size` (H, W). What an engine that builds its operators ahead of the images needs."""
        if all(v.size is not None for v in self.views):
            return self
        views = [View(size=v.size_for(in_size), ops=v.ops) for v in self.views]
        return type(self)(views, self.options)

    def __repr__(self) -> str:
        sizes = "+".join("input" if v.size is None else f"{v.size[0]}x{v.size[1]}" for v in self.views)
        return f"Policy({self.name!r}, views={sizes}, spec={self.spec!r})"

    @property
    def spec(self) -> str:
        return describe([v.ops for v in self.views])

    def gating_for(self, device: torch.device) -> str:
        return self.options.gating_for(device)

    def op_seconds(self) -> dict[str, float]:
        return self._log.seconds if self._log else {}

    def reset_timing(self) -> None:
        if self._log:
            self._log.reset()

    # --- the contract ---------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None,
                 return_params: bool = False, *, masks=None, boxes=None, box_format: str = "xyxy", box_valid=None,
                 keypoints=None):
        """The views; with `masks`, `boxes` or `keypoints` also their `Targets`, one per view
        (`views, targets`, and the params last when `return_params`)."""
        params = self.sample(images, generator=generator)
        views = self.apply(images, params)
        if masks is None and boxes is None and keypoints is None:
            return (views, params) if return_params else views
        targets = self.targets(images, params, masks=masks, boxes=boxes, box_format=box_format,
                               box_valid=box_valid, keypoints=keypoints)
        return (views, targets, params) if return_params else (views, targets)

    def targets(self, images: torch.Tensor, params: list[ViewParams], *, masks=None, boxes=None,
                box_format: str = "xyxy", box_valid=None, keypoints=None) -> list[Targets]:
        """Masks, boxes and keypoints of `images` moved as `params` move each view's images.

        masks `[N, H, W]` or `[N, K, H, W]` (nearest), boxes `[N, M, 4]` padded to M per image in
        `box_format` (xyxy, xywh, cxcywh; `box_valid` `[N, M]` marks the real ones), keypoints
        `[N, M, 2]` (x, y) in pixels. Returns one `Targets` per view.
        """
        if images.dim() == 5:
            raise ValueError("masks, boxes and keypoints go with image batches [N,3,H,W], not video clips")
        in_size = tuple(images.shape[-2:])
        check_targets(images.shape[0], in_size, masks, boxes, box_format, box_valid, keypoints)
        out = []
        for view, view_params in zip(self.views, params):
            *sizes, _ = chain_sizes(view.ops, in_size, view.size)
            out.append(move_targets(view.ops, view_params, sizes, in_size, masks, boxes, box_format, box_valid,
                                    keypoints))
        return out

    def sample(self, images: torch.Tensor, generator: torch.Generator | None = None) -> list[ViewParams]:
        """Every op's per-sample parameters for the whole batch, before any pixel is touched.

        Views of one group are drawn together (`len(views) * N` rows), then split per view.
        """
        check_images(images)  # the type first: only a tensor has a device to ask
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator (or None), got {type(generator).__name__}")
        check_images(images, sync_free=self.gating_for(images.device) == "blend")
        n, device = images.shape[0], images.device
        frames = images.shape[1] if images.dim() == 5 else 1  # video clips: one draw per clip
        per_view: list[ViewParams] = [[] for _ in self.views]
        for group in self.groups:
            rows, hw, drawn = n * len(group.views), tuple(images.shape[-2:]), []
            for op, size in zip(group.ops, op_sizes(group, hw)[0]):
                drawn.append(op.sample(rows, SampleContext(generator, device, hw, size, frames)))
                if op.changes_size:
                    hw = size
            for k, v in enumerate(group.views):
                per_view[v] = [{"op": op.name, **{key: _view_rows(t, k, n * frames if key in op.frame_keys() else n)
                                                  for key, t in p.items()}}
                               for op, p in zip(group.ops, drawn)]
        return per_view

    def apply(self, images: torch.Tensor, params: list[ViewParams]) -> list[torch.Tensor]:
        """The views of `images` for `params` (from `sample`): pure, fixed output shapes. Video
        clips `[N, T, C, H, W]` run as `N * T` images, each frame with its clip's parameters."""
        if images.dim() == 5:
            return self._apply_clips(images, params)
        if self.options.time_ops and (self._log is None or self._log.device != images.device):
            self._log = TimeAccount(images.device)
        if self.options.compiles_on(images.device) and not torch.compiler.is_compiling():
            with self._log.phase("compiled") if self.options.time_ops else nullcontext():
                return self._compiled(images, params)
        return self._apply(images, params)

    def _apply_clips(self, clips: torch.Tensor, params: list[ViewParams]) -> list[torch.Tensor]:
        n, frames = clips.shape[:2]
        per_frame = [[{key: value if key == "op" or key in op.frame_keys() else _frame_rows(value, frames)
                       for key, value in p.items()} for op, p in zip(view.ops, view_params)]
                     for view, view_params in zip(self.views, params)]
        views = self.apply(clips.flatten(0, 1), per_frame)
        return [v.unflatten(0, (n, frames)) for v in views]

    # --- running the groups -----------------------------------------------------------------
    def _apply(self, images: torch.Tensor, params: list[ViewParams]) -> list[torch.Tensor]:
        compiling = torch.compiler.is_compiling()  # traced: blend gating, no timing, no views of views
        gating = "blend" if compiling else self.gating_for(images.device)
        account = None if compiling else self._log
        n = images.shape[0]
        outputs: list[torch.Tensor | None] = [None] * len(self.views)
        for group in self.groups:
            joined = [{key: join_rows([params[v][i][key] for v in group.views], compiling)
                       for key in params[group.views[0]][i] if key != "op"}
                      for i in range(len(group.ops))]
            y = self._run_group(group, images, joined, gating, account)
            for k, v in enumerate(group.views):
                outputs[v] = y[k * n:(k + 1) * n]
        return outputs

    def _run_group(self, group: ViewGroup, images: torch.Tensor, params: list[dict[str, torch.Tensor]],
                   gating: str, account: TimeAccount | None) -> torch.Tensor:
        """Blend: the group's rows as one batch. Subset: in CPU-sized chunks, with the compiled hue."""
        output, count = Output(self.options.dtype, self.options.channels_last), len(group.views)
        sizes, size = op_sizes(group, tuple(images.shape[-2:]))  # static: the batch's shape
        if not images.shape[0]:  # an empty batch: empty views of the right size and dtype
            return torch.empty((0, 3, *size), dtype=output.dtype, device=images.device)
        if gating == "blend":
            return run_chain(group.ops, repeat_rows(images, count), params, ApplyContext(size), "blend",
                             output, account, sizes)
        ctx = ApplyContext(size, gating="subset", options={"hue_kernel": self._hue})
        out = self._outputs.get((images.shape[0] * count, 3, *size), output.dtype, images.device,
                                output.memory_format)
        return run_in_chunks(lambda rows, p: run_chain(group.ops, rows, p, ctx, "subset", output, account, sizes),
                             images, params, count, out, self._threads)
