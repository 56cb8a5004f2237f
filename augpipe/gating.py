"""Per-sample gating: the policy, not the op, decides which rows keep a kernel's result.

- `blend`: the kernel runs on every row and `torch.where` keeps the selected ones. No host read,
  fixed shapes: what `torch.compile(fullgraph=True)` and CUDA graphs take (the CUDA default).
- `subset`: the kernel runs on the selected rows only (`nonzero` + `index_select`). On the CPU the
  host read is free and skipping rows is cheaper (the CPU default).
Both give the same views for the same parameters (tests/augpipe/test_policy.py).
"""
from __future__ import annotations

import torch

from augpipe.op import ApplyContext, Op
from augpipe.rows import put

GATINGS = ("auto", "blend", "subset")


def gate(op: Op, images: torch.Tensor, params: dict[str, torch.Tensor], ctx: ApplyContext,
         gating: str) -> torch.Tensor:
    """Run `op` on the rows whose `apply` mask is set; the others pass through unchanged.
    `ctx.inplace` says whether `images` belong to the policy (may be written)."""
    if not op.gated or op.p >= 1.0:  # static: every row
        return op.kernel(images, params, ctx.but(inplace=ctx.inplace and gating == "subset"))
    if op.p <= 0.0:
        return images
    mask = params["apply"]
    if gating == "blend":
        return torch.where(mask.view(-1, 1, 1, 1), op.kernel(images, params, ctx.but(inplace=False)), images)
    idx = mask.nonzero().squeeze(1)  # on the CPU, the host read costs nothing
    count = idx.numel()
    if count == 0:
        return images
    if count == images.shape[0]:
        return op.kernel(images, params, ctx)
    sub = {k: v.index_select(0, idx) for k, v in params.items()}
    result = op.kernel(images.index_select(0, idx), sub, ctx.but(inplace=True))
    target = images if ctx.inplace else images.clone()
    return put(target, idx, result)
