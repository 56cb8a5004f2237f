"""`build(cfg, ...)`: everything a run is made of (`Parts`), built before `--out` is touched, so
every flag that can be wrong fails here: loaders, the policy on its engine, model, method, optimisers."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

import augpipe
import loaders
from augpipe.interop import engines as aug_engines
from loaders.sources.datasets import splits
from ssl_train.backbones import build_backbone
from ssl_train.config import TrainConfig
from ssl_train.methods import build_method
from ssl_train.optim import adamw, build_optimizer, scaled_lr
from ssl_train.rundir import RunError

NORMALIZE = "imagenet"


def cpu_threads(num_workers: int, requested: int = 0) -> int:
    """Intra-op threads of the main process on CPU: `requested` (--cpu-threads) if given, else
    `OMP_NUM_THREADS` if the user set it, else the cores the loader workers leave free.

    Workers decode on their own cores; a main process that also spreads every op over all cores
    makes both wait on each other (on 2 cores with 2 workers, hundreds of small parallel regions
    per step spin against the decoders). One thread at least. The count is fixed for the run
    (and written in result.json): float reductions depend on it (same seed, same result).
    """
    if requested:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - num_workers) if num_workers > 0 else cores


def data_splits(data: str) -> tuple[str, str]:
    """`digits` -> embedded train/test; an archive -> its train/test; PATH -> PATH/train and PATH/test
    (`loaders.sources.datasets.splits`, the one resolver)."""
    try:
        return splits(data)
    except ValueError as err:
        raise RunError(str(err)) from None


class Trainer(nn.Module):
    """Backbone + method in one module, so that DDP wraps a single forward."""

    def __init__(self, backbone: nn.Module, method: nn.Module):
        super().__init__()
        self.backbone, self.method = backbone, method

    def forward(self, views, labels=None):
        return self.method(self.backbone, views, labels)


@dataclass
class Data:
    train: loaders.Loader       # shuffled, sharded, the training batches
    eval_train: loaders.Loader  # in order, for kNN's memory bank
    eval_test: loaders.Loader   # in order, the same test images whatever the seed

    @property
    def num_classes(self) -> int:
        return len(self.eval_test.classes)


@dataclass
class Parts:
    """Everything a run is made of."""
    data: Data
    augment: aug_engines.Runner   # the policy on its engine
    to_input: Callable                 # images -> the plain, normalised model input (evaluation)
    backbone: nn.Module
    method: nn.Module
    trainer: nn.Module
    forward: Callable                  # the trainer, DDP-wrapped and compiled as asked
    probe: nn.Linear
    optimizer: torch.optim.Optimizer
    probe_opt: torch.optim.Optimizer
    peak_lr: float

    @property
    def labeled_train(self) -> bool:
        """An unlabeled training folder pretrains without the online probe; kNN then uses the
        labelled test split alone (`ssl_train.loop.evaluate`)."""
        return bool(self.data.train.classes)


def build_data(cfg: TrainConfig, device: torch.device, rank: int, world: int, progress: bool) -> Data:
    train_src, test_src = data_splits(cfg.data)
    common = dict(image_size=cfg.image_size, device=device, num_workers=cfg.num_workers, seed=cfg.seed,
                  progress=progress)
    subset = cfg.train_subset or None
    train = loaders.build_loader(cfg.loader, train_src, batch_size=cfg.batch_size // world, shuffle=True,
                                 drop_last=True, rank=rank, world_size=world, subset=subset, **common)
    if len(train) == 0:
        raise RunError(f"--batch-size {cfg.batch_size}: larger than the training split ({train_src}); "
                       "lower it or use more images")
    if subset and train.dataset_size < subset and rank == 0:  # result.json's train_images says what was used
        print(f"note: --train-subset {subset} is more than the {train.dataset_size} images of {train_src}; "
              "training on all of them", flush=True)
    eval_train = loaders.build_loader(cfg.loader, train_src, batch_size=512, shuffle=False, subset=subset, **common)
    eval_test = loaders.build_loader(cfg.loader, test_src, batch_size=512, shuffle=False,
                                     subset=cfg.test_subset or None, **{**common, "seed": 0})
    if not eval_test.classes:
        raise RunError(f"--data {cfg.data}: the test split {test_src} is unlabeled; evaluation needs a labelled "
                       "test split (test/<class>/<image>)")
    if not train.classes and cfg.method == "supervised":
        raise RunError(f"--method supervised: the training split {train_src} is unlabeled")
    return Data(train, eval_train, eval_test)


def build_augment(cfg: TrainConfig, device: torch.device, world: int) -> tuple[aug_engines.Runner, Callable]:
    """The policy on its engine, and the plain (resize + normalise) input for evaluation.
    cpu_threads="keep": the loop pins torch's threads (cpu_threads()); a count that followed the
    load would change the model's float reductions from run to run (same seed, same result)."""
    policy = augpipe.build_policy(cfg.policy, size=cfg.image_size, views=cfg.views, normalize=NORMALIZE,
                                  channels_last=cfg.channels_last, time_ops=True, cpu_threads="keep")
    options = {"device": str(device), "batch_size": cfg.batch_size // world} if cfg.aug_engine == "dali" else {}
    plain = augpipe.build_policy("none", size=cfg.image_size, views=1, normalize=NORMALIZE,
                                 channels_last=cfg.channels_last, cpu_threads="keep")
    return aug_engines.build(cfg.aug_engine, policy, **options), lambda images: plain(images)[0]


def build(cfg: TrainConfig, device: torch.device, rank: int, world: int, progress: bool = True) -> Parts:
    data = build_data(cfg, device, rank, world, progress)
    augment, to_input = build_augment(cfg, device, world)
    backbone, feat_dim = build_backbone(cfg.backbone, cfg.image_size)
    if cfg.channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
    method = build_method(cfg.method, feat_dim, cfg, data.num_classes)
    trainer = Trainer(backbone, method).to(device)
    method.setup(backbone)  # before DDP and the optimiser see the parameters
    probe = nn.Linear(feat_dim, data.num_classes).to(device)
    peak_lr = scaled_lr(cfg.lr, cfg.batch_size, cfg.lr_scaling)
    optimizer = build_optimizer(cfg.optimizer, [p for p in trainer.parameters() if p.requires_grad], peak_lr,
                                cfg.weight_decay, cfg.momentum)
    probe_opt = adamw(probe.parameters(), lr=cfg.probe_lr, weight_decay=1e-6)
    model = trainer
    if world > 1:
        model = nn.parallel.DistributedDataParallel(trainer, device_ids=[device.index] if device.type == "cuda" else None)
    return Parts(data, augment, to_input, backbone, method, trainer, torch.compile(model) if cfg.compile else model,
                 probe, optimizer, probe_opt, peak_lr)
