"""Per-epoch order and sharding, decided in one place from (seed, epoch, rank, world_size).

Every backend asks here (through `loaders.backends.base.Selection`) which sample indices it loads, in which
order, for one epoch. The torch and DALI backends load exactly that order; FFCV loads this rank's
shard of the epoch-0 order and permutes it per epoch with its own seeded order (its `Loader` takes
one fixed index list), so its shards are the same but its order within an epoch is FFCV's. The
epoch's permutation comes from a generator seeded with (seed, epoch), and rank r of W takes positions
r, r+W, r+2W, ... of it (as torch's DistributedSampler does), so the shards are disjoint and cover
the dataset. Without drop_last the permutation is padded by wrapping so all shards have equal size
(needed for DDP's lockstep); the padded duplicates are the first few of the permutation.
"""
from __future__ import annotations

import math

import numpy as np


def epoch_indices(n: int, *, epoch: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1,
                  drop_last: bool = False) -> np.ndarray:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size) and world_size >= 1, got rank={rank}, "
                         f"world_size={world_size}")
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(n)
    else:
        order = np.arange(n)
    if world_size > 1:
        if drop_last:
            order = order[: (n // world_size) * world_size]
        else:
            total = math.ceil(n / world_size) * world_size
            order = np.resize(order, total)  # wraps as often as needed (more ranks than images too)
        order = order[rank::world_size]
    return order


def batches(indices: np.ndarray, batch_size: int, drop_last: bool) -> list[np.ndarray]:
    count = len(indices) // batch_size if drop_last else math.ceil(len(indices) / batch_size)
    return [indices[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def num_batches(n: int, batch_size: int, rank: int, world_size: int, drop_last: bool) -> int:
    per_rank = n // world_size if drop_last else math.ceil(n / world_size)
    return per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)


def subset_members(n: int, subset: int | None, seed: int) -> np.ndarray:
    """Dataset indices a loader draws from: all of them, or a seeded random `subset` of them
    (sorted, the same on every backend and every epoch)."""
    if subset is None or subset >= n:
        return np.arange(n)
    if subset < 1:
        raise ValueError(f"subset must be >= 1, got {subset}")
    return np.sort(np.random.default_rng([seed, 0x5B5E7]).choice(n, size=subset, replace=False))
