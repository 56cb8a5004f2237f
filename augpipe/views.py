"""The views grammar: how many views, of which sizes, with which crop scale.

    2                      two views of `size`
    "2x224+6x96@0.05:0.14" multi-crop: COUNTxSIZE[@LO:HI] groups, `@LO:HI` overriding the crop scale
"""
from __future__ import annotations

import re

_VIEW_RE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*(?:@\s*([\d.]+)\s*:\s*([\d.]+))?\s*$")

ViewSpec = tuple[tuple[int, int], tuple[float, float] | None]  # (size, crop scale or None)


def parse_views(views: int | str, size: int | tuple[int, int]) -> list[ViewSpec]:
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
