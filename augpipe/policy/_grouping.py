"""View grouping: views with the same size and ops are sampled and run as one batch of
`len(views) * N` rows (SimCLR's two views: half the kernel launches)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from augpipe.ops import Op


@dataclass
class View:
    """One view: output size and its ordered ops (the first op sets the size). `size=None`: the
    input's size (torchvision's behaviour for a pipeline without a crop or resize), for views
    whose ops keep the size; it is read from the batch's static shape, never from its values."""
    size: tuple[int, int] | None
    ops: list[Op]

    def __post_init__(self):
        if self.size is None:
            sizing = [op.name for op in self.ops if op.changes_size and op.output_size((1, 1), None) is None]
            if sizing:
                raise ValueError(f"a view without a size keeps the input's, but {', '.join(sizing)} sets one; "
                                 "pass size=")

    def size_for(self, in_size: tuple[int, int]) -> tuple[int, int]:
        """The output size for images of `in_size` (H, W)."""
        return chain_sizes(self.ops, in_size, self.size)[-1]


@dataclass
class ViewGroup:
    """Views with the same size and ops, by index into the policy's views."""
    size: tuple[int, int] | None  # None: the input's
    ops: list[Op]
    views: list[int]

    def size_for(self, in_size: tuple[int, int]) -> tuple[int, int]:
        return chain_sizes(self.ops, in_size, self.size)[-1]


def chain_sizes(ops: list[Op], in_size: tuple[int, int], view_size: tuple[int, int] | None) -> list[tuple[int, int]]:
    """Each op's output size (static: from shapes, never values), then the chain's: an op that
    changes the size makes its own (`Op.output_size`), the others keep it. The view's size is the
    default of the ops that have none; no size-changing op: the view's size, else the input's."""
    sizes, hw = [], tuple(in_size)
    for op in ops:
        if op.changes_size:
            hw = tuple(op.output_size(hw, view_size))
        sizes.append(hw)
    if not any(op.changes_size for op in ops):
        hw = tuple(view_size) if view_size is not None else hw
    return [*sizes, hw]


def group_views(views: list[View]) -> list[ViewGroup]:
    groups: list[ViewGroup] = []
    for i, view in enumerate(views):
        group = next((g for g in groups if g.size == view.size and g.ops == view.ops), None)
        if group is None:
            groups.append(ViewGroup(view.size, view.ops, [i]))
        else:
            group.views.append(i)
    return groups


def join_rows(parts: list[torch.Tensor], compiling: bool = False) -> torch.Tensor:
    """The group's rows of one parameter. `sample` hands out each view's rows as consecutive
    slices of one tensor: give that tensor back instead of copying it (the noise parameter is as
    large as the batch); anything else (or under torch.compile) is concatenated."""
    if len(parts) == 1:
        return parts[0]
    base = parts[0]._base
    if (not compiling and base is not None and base.is_contiguous()
            and base.shape == (sum(p.shape[0] for p in parts), *parts[0].shape[1:])):
        row_bytes = base[0].numel() * base.element_size() if len(base) else 0
        offset, consecutive = base.data_ptr(), True
        for p in parts:
            consecutive &= p._base is base and p.data_ptr() == offset
            offset += p.shape[0] * row_bytes
        if consecutive:
            return base
    return torch.cat(parts)


def repeat_rows(images: torch.Tensor, count: int) -> torch.Tensor:
    """`count` copies of the batch stacked on dim 0 (one copy kernel; none for count 1)."""
    if count == 1:
        return images
    return images.unsqueeze(0).expand(count, *images.shape).reshape(count * images.shape[0], *images.shape[1:])
