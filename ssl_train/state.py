"""A run's state at an epoch's end or between two steps: the one checkpoint schema (`RunState`),
saved after every epoch and at step checkpoints (a signal, `--checkpoint-every`), restored by
`--resume`, and the checks made on it (finite, same configuration)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

# config fields that may change between a run and its resume: where it is written, how often it
# checkpoints, where its scalars go (none changes a result)
UNCOMPARED_FIELDS = ("out", "checkpoint_every", "logger")


@dataclass
class RunState:
    """Everything `--resume` needs: the model's and optimisers' state dicts plus the bookkeeping."""
    config: dict
    epoch: int = -1                       # the last finished epoch (-1: none yet)
    trainer: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    optimizer: dict = field(default_factory=dict)
    probe_opt: dict = field(default_factory=dict)
    history: list = field(default_factory=list)   # one log row per finished epoch
    totals: dict = field(default_factory=dict)    # seconds per phase
    op_totals: dict = field(default_factory=dict)  # seconds per augmentation op
    knn_init: float | None = None                 # kNN of the random initialisation (the floor)
    step: int = 0                 # steps finished of epoch `epoch + 1` (0: the run is at an epoch's end)
    in_epoch: dict = field(default_factory=dict)  # that unfinished epoch's running state (ssl_train.loop.EpochState)

    MODEL_KEYS = ("trainer", "probe", "optimizer", "probe_opt")

    def capture(self, parts) -> None:
        """Take the model's and optimisers' current state from `parts` (ssl_train.parts.Parts)."""
        for key in self.MODEL_KEYS:
            setattr(self, key, getattr(parts, key).state_dict())

    def restore(self, parts) -> None:
        for key in self.MODEL_KEYS:
            getattr(parts, key).load_state_dict(getattr(self, key))

    def to_dict(self) -> dict:
        return {key: getattr(self, key) for key in (*schema_keys(), *OPTIONAL_KEYS)}  # no copy (asdict would deep-copy tensors)

    @classmethod
    def from_dict(cls, data: dict) -> "RunState":
        return cls(**{k: data[k] for k in schema_keys()}, **{k: data[k] for k in OPTIONAL_KEYS if k in data})

    def first_nonfinite(self) -> str | None:
        return first_nonfinite({k: getattr(self, k) for k in self.MODEL_KEYS})


OPTIONAL_KEYS = ("step", "in_epoch")  # absent from epoch checkpoints of earlier versions: an epoch's end


def schema_keys() -> tuple[str, ...]:
    """The keys every checkpoint has (`ssl_train.checkpoint` refuses a file that lacks one)."""
    return tuple(f.name for f in fields(RunState) if f.name not in OPTIONAL_KEYS)


def config_changes(saved: dict, current: dict) -> list[str]:
    """Fields that differ, ignoring those that only name places (a moved run resumes)."""
    return sorted(k for k in current if k not in UNCOMPARED_FIELDS and saved.get(k) != current[k])


def _tensors(obj, prefix: str):
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}.{i}")


def first_nonfinite(states: dict) -> str | None:
    """The name of the first floating tensor with a NaN or inf in `states`, or None (one host read)."""
    named = [(name, t) for name, t in _tensors(states, "") if t.is_floating_point() and t.numel()]
    if not named:
        return None
    finite = torch.stack([torch.isfinite(t).all() for _, t in named])
    if bool(finite.all()):
        return None
    return named[int((~finite).int().argmax())][0]
