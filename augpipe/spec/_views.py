"""The views grammar: how many views, of which sizes, with which crop scale.

    2                      two views of `size`
    "2x224+6x96@0.05:0.14" multi-crop: COUNTxSIZE[@LO:HI] groups, `@LO:HI` overriding the crop scale
"""
from __future__ import annotations

import re

from augpipe.ops import check_range

_VIEW_RE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*(?:@\s*([\d.]+)\s*:\s*([\d.]+))?\s*$")

ViewSpec = tuple[tuple[int, int] | None, tuple[float, float] | None]  # (size or None: the input's, crop scale or None)


def parse_views(views: int | str, size: int | tuple[int, int] | None) -> list[ViewSpec]:
    """`2` -> two views of `size` (None: the input's); `"2x224+6x96@0.05:0.14"` -> multi-crop
    groups (size, crop scale)."""
    if isinstance(views, int) or (isinstance(views, str) and views.strip().isdigit()):
        count = int(views)
        if count < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        if size is None:
            return [(None, None)] * count
        hw = (size, size) if isinstance(size, int) else tuple(size) if isinstance(size, (tuple, list)) else ()
        if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in hw):
            raise ValueError(f"size must be a whole number of pixels >= 1 (or two: height, width), got {size!r}")
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
        if scale is not None:  # a crop's area fraction, as rrc's scale
            check_range(f"views {group.strip()!r}", "crop scale", scale, 1e-6, 1.0)
        result += [((side, side), scale)] * count
    return result
