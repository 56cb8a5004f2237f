"""torchvision.transforms.v2 applied image by image: what a DataLoader worker does per sample.

Each op's transform is its `counterparts.to_torchvision(op, target)`; the target's helpers say how
an op's probability and ranges become torchvision's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from augpipe.interop.engines._base import Target

KEY = "to_torchvision"


@dataclass
class TorchvisionTarget(Target):
    """torchvision's v2 (`lib`), with the helpers torchvision-style translations share (torchaug's too)."""

    def maybe(self, op, transform):
        """`transform` with the op's probability (torchvision's own ops that have no `p`)."""
        return transform if op.p >= 1 else self.lib.RandomApply([transform], p=op.p)

    def maybe_else(self, op, transform, otherwise):
        """`transform` with the op's probability, else `otherwise` (a crop, else the whole image resized)."""
        return transform if op.p >= 1 else self.lib.RandomChoice([transform, otherwise], [op.p, 1 - op.p])

    def fixed(self, op, key: str) -> float:
        """The op's range `key` as the one number torchvision takes (refused when it is a range)."""
        lo, hi = getattr(op, key)
        if lo != hi:
            self.unsupported(f"{op.name} with a {key} range (torchvision's is fixed)")
        return lo

    def interpolation(self, op):
        """The op's `mode` as torchvision's InterpolationMode (torchaug takes the same)."""
        from torchvision.transforms import v2
        return v2.InterpolationMode(op.mode)

    def fill_or_none(self, op):
        """The auto-augment ops' `fill` as torchvision takes it: None (`none`) or a number."""
        return None if op.fill == "none" else float(op.fill)


def build(policy, **_):
    from torchvision.transforms import v2
    composes = [v2.Compose([v2.ToDtype(torch.float32, scale=True)]
                           + [TorchvisionTarget("torchvision", v2, view.size).translate(KEY, op) for op in view.ops])
                for view in policy.views]

    def run(images: torch.Tensor, generator=None):
        return [torch.stack([compose(img) for img in images]) for compose in composes]
    return run
