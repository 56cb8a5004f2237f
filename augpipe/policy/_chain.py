"""One view group's ops, in order, on a batch of rows: float conversion, fusion, gating, timing."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from _augpipe_shared.timing import TimeAccount
from augpipe.ops import ApplyContext, Op, gate
from augpipe.policy._fusion import fused_pair


@dataclass(frozen=True)
class Output:
    """What every view leaves as: its dtype and memory format (computation is float32)."""
    dtype: torch.dtype = torch.float32
    channels_last: bool = False

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def run_chain(ops: list[Op], images: torch.Tensor, params: list[dict[str, torch.Tensor]], ctx: ApplyContext,
              gating: str, output: Output, account: TimeAccount | None = None,
              sizes: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """`ops` on `images` (rows matching `params`), per-op seconds into `account` when given.
    `sizes`: each op's `out_size` (an op with a size of its own makes that; default: `ctx`'s)."""
    y = images.to(torch.float32).div_(255.0) if images.dtype == torch.uint8 else images.float()
    owned = y is not images  # never write into the caller's tensor
    i = 0
    while i < len(ops):
        before, fused = y, fused_pair(ops, i)
        name = f"{ops[i].name}+{ops[i + 1].name}" if fused else ops[i].name
        here = ctx.but(inplace=owned) if sizes is None else ctx.but(inplace=owned, out_size=sizes[i])
        with account.phase(name) if account is not None else nullcontext():
            if fused:
                y = fused(ops[i], params[i], ops[i + 1], params[i + 1], y, here)
            else:
                y = gate(ops[i], y, params[i], here, gating)
        owned = owned if y is before else y.is_contiguous()  # a broadcast view is not writable
        i += 2 if fused else 1
    return y.to(output.dtype).contiguous(memory_format=output.memory_format)
