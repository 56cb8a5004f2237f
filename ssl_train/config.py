"""The run's configuration: one dataclass that the CLI fills and the run saves (config.json)."""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields

from augpipe.interop.engines import ENGINES
from loaders import BACKENDS
from ssl_train.backbones import resolve_backbone
from ssl_train.methods import METHODS
from ssl_train.optim import LR_RULES, OPTIMIZERS
from ssl_train.tracking import LOGGERS

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 4096


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


@dataclass
class TrainConfig:
    data: str = "digits"              # embedded name or a folder with train/ (and test/) ImageFolders
    loader: str = "torch"             # torch | dali | ffcv | a registered backend
    train_subset: int = 0             # 0 = the whole train split, else a seeded random subset
    test_subset: int = 0              # 0 = the whole test split, else a fixed random subset (seed 0)
    policy: str = "simclr"            # preset name (with [overrides]) or spec string
    aug_engine: str = "augpipe"       # augpipe | augpipe-compiled | kornia | kornia-compiled | torchvision | dali
    views: str = "2"                  # count, or multi-crop "2x32+4x16@0.05:0.14"
    method: str = "simclr"            # simclr | vicreg | byol | barlow | dino | mocov3 | supervised (the ceiling) | a registered one
    method_options: dict = field(default_factory=dict)  # the method's own options (its `Options`), all of them once validated
    negatives: str = "all"            # SimCLR: all | K
    temperature: float = 0.2          # InfoNCE temperature: SimCLR, MoCo v3
    proj_hidden: int = 512
    proj_dim: int = 128
    proj_layers: int = 2
    ema: float = 0.99                 # the momentum teacher's base momentum: BYOL, MoCo v3, DINO
    barlow_lambda: float = 5e-3
    backbone: str = "small"           # small | resnet18 | resnet50 | timm:NAME | torchvision:NAME, with (key=value, ...)
    image_size: int = 32
    batch_size: int = 256
    epochs: int = 20
    optimizer: str = "adamw"          # lars | sgd | adamw
    lr: float = 2e-3                  # base lr, scaled by lr_scaling with batch_size / 256
    lr_scaling: str = "none"          # linear | sqrt | none
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    knn_k: int = 200
    knn_temperature: float = 0.1
    probe_lr: float = 1e-3
    eval_every: int = 1               # kNN every N epochs (and always at the end)
    check_every: int = 50             # read the loss (the one host read) every N steps and at epoch end
    device: str = "auto"              # auto | cpu | cuda
    precision: str = "fp32"           # fp32 | bf16 (autocast on CUDA)
    channels_last: bool = False
    compile: bool = False
    num_workers: int = 2
    cpu_threads: int = 0              # intra-op threads on the CPU; 0 = OMP_NUM_THREADS if set, else the free cores
    aug_threads: int = 1              # intra-op threads of the augmentation on the CPU; 0 = as --cpu-threads
    seed: int = 0
    out: str = "runs/run"
    checkpoint_every: float = 30.0    # minutes between step checkpoints (0 = at epoch ends only)
    logger: str = "none"              # none | tensorboard (scalars into OUT/tensorboard)

    # the CLI's choices are the registries themselves (read when checked: a --plugin's names count)
    CHOICES = {"loader": BACKENDS, "aug_engine": ENGINES, "method": METHODS, "optimizer": tuple(OPTIMIZERS), "lr_scaling": tuple(LR_RULES), "device": ("auto", "cpu", "cuda"),
               "precision": ("fp32", "bf16"), "logger": LOGGERS}

    def validate(self) -> None:
        """One-line errors naming the flag and what it expects (nothing is touched before this)."""
        self._check_kinds()
        for key, allowed in self.CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"--{key.replace('_', '-')}: {getattr(self, key)!r} is not one of {', '.join(allowed)}")
        if self.negatives != "all" and not (self.negatives.isdigit() and int(self.negatives) >= 1):
            raise ValueError(f"--negatives: expected 'all' or a positive integer K, got {self.negatives!r}")
        if self.negatives != "all" and self.method != "simclr":
            raise ValueError("--negatives applies to --method simclr only")
        if self.train_subset < 0:
            raise ValueError(f"--train-subset: must be >= 0 (0 = all), got {self.train_subset}")
        if self.test_subset < 0:
            raise ValueError(f"--test-subset: must be >= 0 (0 = all), got {self.test_subset}")
        for key in ("batch_size", "epochs", "image_size", "knn_k", "proj_dim", "proj_hidden", "eval_every",
                    "check_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')}: must be >= 1, got {getattr(self, key)}")
        for key in ("lr", "temperature", "knn_temperature", "probe_lr"):
            if not getattr(self, key) > 0:
                raise ValueError(f"--{key.replace('_', '-')}: must be > 0, got {getattr(self, key)}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"--ema: must be in [0, 1), got {self.ema}")
        for key in ("weight_decay", "warmup_epochs", "momentum", "barlow_lambda", "num_workers", "cpu_threads", "aug_threads",
                    "checkpoint_every"):
            if getattr(self, key) < 0:
                raise ValueError(f"--{key.replace('_', '-')}: must be >= 0, got {getattr(self, key)}")
        if self.momentum >= 1:
            raise ValueError(f"--momentum: must be in [0, 1), got {self.momentum}")
        if self.proj_layers < 1:
            raise ValueError(f"--proj-layers: must be >= 1 (linear layers of the projector), got {self.proj_layers}")
        if not 0 <= self.seed < 2**32:  # a step's seed is seed x 1,000,003 + epoch: torch takes 64 bits
            raise ValueError(f"--seed: must be an integer in [0, 2**32), got {self.seed}")
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(f"--image-size: must be in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}] px, got {self.image_size}")
        from augpipe.spec import parse_views
        try:
            views = parse_views(self.views, self.image_size)
        except ValueError as err:
            raise ValueError(f"--views: {err}") from None
        if self.method != "supervised" and len(views) < 2:
            raise ValueError(f"--views: {self.method} compares views of the same image; needs >= 2, got {len(views)}")
        self._check_policy()
        self._check_memory(views)
        self._check_model()

    def _check_kinds(self) -> None:
        """Strings where names go, finite numbers (a config read from a file may hold anything)."""
        for key in ("data", "out", "policy", "views", "backbone"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key).strip():
                raise ValueError(f"--{key}: expected a non-empty string, got {getattr(self, key)!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"--{f.name.replace('_', '-')}: must be a finite number, got {value}")

    def _check_model(self) -> None:
        """The backbone's name, and the method's own options (all of them, once checked)."""
        resolve_backbone(self.backbone, self.image_size)
        from ssl_train.methods import options
        self.method_options = options.resolve(self.method, METHODS[self.method].Options, self.method_options)

    def _check_policy(self) -> None:
        """The policy and the views it is built for, checked before anything is loaded."""
        from augpipe import SpecError, build_policy
        try:
            build_policy(self.policy, size=self.image_size, views=self.views)
        except SpecError as err:
            raise ValueError(f"--policy: {err}") from None

    def _check_memory(self, views) -> None:
        """Refuse a batch whose float views alone cannot fit in this machine's memory."""
        view_bytes = sum(4 * 3 * h * w for (h, w), _ in views)
        need = self.batch_size * (view_bytes + 3 * self.image_size ** 2)  # views + the uint8 batch
        have = _memory_bytes()
        if have and need > have // 2:
            raise ValueError(f"--image-size {self.image_size} with --batch-size {self.batch_size}: one batch of views "
                             f"needs {need / 2**30:.1f} GiB, more than half of this machine's {have / 2**30:.1f} GiB; "
                             "lower either")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
