"""`Augment`: a policy as a `torch.nn.Module`, where frameworks expect one.

    model = nn.Sequential(augpipe.Augment(augpipe.from_torchvision(pipeline), seed=0), backbone)
    # Lightning: def on_after_batch_transfer(self, batch, idx): x, y = batch; return self.augment(x), y

The module holds no parameters or buffers (so `model.to(device)`, DDP and checkpoints pass it by);
its random state is one `torch.Generator` per device the batches arrive on, seeded with
`seed` (+ `rank`, so DDP ranks draw differently), made on first use and advanced by every call:
the same seed gives the same sequence of views. Without a seed, torch's global RNG is used.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class Augment(nn.Module):
    def __init__(self, policy, seed: int | None = None, rank: int = 0):
        super().__init__()
        self.policy, self.seed, self.rank = policy, seed, rank
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed + self.rank)
        return self._generators[key]

    def forward(self, images: torch.Tensor):
        return self.policy(images, generator=self.generator(images.device))

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}, seed={self.seed}, rank={self.rank}"
