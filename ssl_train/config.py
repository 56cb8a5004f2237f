"""The run's configuration: one dataclass that the CLI fills and the run saves (config.json)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from augpipe.engines import ENGINES


@dataclass
class TrainConfig:
    data: str = "digits"              # embedded name or a folder with train/ (and test/) ImageFolders
    loader: str = "torch"             # torch | dali | ffcv
    train_subset: int = 0             # 0 = the whole train split, else a seeded random subset
    policy: str = "simclr"            # preset name (with [overrides]) or spec string
    aug_engine: str = "augpipe"       # augpipe | augpipe-compiled | kornia | kornia-compiled | torchvision | dali
    views: str = "2"                  # count, or multi-crop "2x32+4x16@0.05:0.14"
    method: str = "simclr"            # simclr | vicreg | byol | barlow | supervised (the ceiling)
    negatives: str = "all"            # SimCLR: all | K
    temperature: float = 0.2
    proj_hidden: int = 512
    proj_dim: int = 128
    proj_layers: int = 2
    ema: float = 0.99                 # BYOL base momentum
    barlow_lambda: float = 5e-3
    backbone: str = "small"           # small | resnet18 | resnet50
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
    seed: int = 0
    out: str = "runs/run"

    CHOICES = {"loader": ("torch", "dali", "ffcv"), "aug_engine": ENGINES, "method": ("simclr", "vicreg", "byol", "barlow", "supervised"),
               "backbone": ("small", "resnet18", "resnet50"), "optimizer": ("lars", "sgd", "adamw"),
               "lr_scaling": ("linear", "sqrt", "none"), "device": ("auto", "cpu", "cuda"),
               "precision": ("fp32", "bf16")}

    def validate(self) -> None:
        """One-line errors naming the flag and what it expects."""
        for key, allowed in self.CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"--{key.replace('_', '-')}: {getattr(self, key)!r} is not one of {', '.join(allowed)}")
        if self.negatives != "all" and not (self.negatives.isdigit() and int(self.negatives) >= 1):
            raise ValueError(f"--negatives: expected 'all' or a positive integer K, got {self.negatives!r}")
        if self.negatives != "all" and self.method != "simclr":
            raise ValueError("--negatives applies to --method simclr only")
        if self.train_subset < 0:
            raise ValueError(f"--train-subset: must be >= 0 (0 = all), got {self.train_subset}")
        for key in ("batch_size", "epochs", "image_size", "knn_k", "proj_dim", "proj_hidden", "eval_every",
                    "check_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')}: must be >= 1, got {getattr(self, key)}")
        for key in ("lr", "temperature", "knn_temperature", "probe_lr"):
            if not getattr(self, key) > 0:
                raise ValueError(f"--{key.replace('_', '-')}: must be > 0, got {getattr(self, key)}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"--ema: must be in [0, 1), got {self.ema}")
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("--weight-decay and --warmup-epochs must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
