"""Experiment tracking: `--logger tensorboard` writes the run's scalars with
`torch.utils.tensorboard` into RUN/tensorboard (`tensorboard --logdir RUN`).

Rank 0 only, and nothing that reads the device: the loss and learning rate are logged at each
`--check-every` step group, from the value the loss watch has just read back (its one host read);
the epoch's scalars come from its log row (the time account, read once per epoch). Tags:
- per step group, against the optimiser step: `train/loss` (the group's mean), `train/lr`;
- per epoch, against the epoch: `epoch/loss`, `epoch/lr`, `epoch/knn_top1`, `epoch/linear_top1`,
  `time/data_s`, `time/augment_s`, `time/model_s`, `time/eval_s`, `time/images_per_s`,
  `time/augment_ms_per_image`.
`log.csv` is written either way.
"""
from __future__ import annotations

from pathlib import Path

LOGGERS = ("none", "tensorboard")
FOLDER = "tensorboard"  # inside the run folder
EPOCH_TAGS = {"loss": "epoch/loss", "lr": "epoch/lr", "knn_top1": "epoch/knn_top1", "linear_top1": "epoch/linear_top1",
              "data_s": "time/data_s", "augment_s": "time/augment_s", "model_s": "time/model_s",
              "eval_s": "time/eval_s", "images_per_s": "time/images_per_s"}


class Tracker:
    """Where scalars go; this one drops them (`--logger none`, and every rank but 0)."""

    def step_group(self, step: int, loss: float, lr: float) -> None:
        pass

    def epoch(self, row: dict, images: int) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    """Scalars into `folder` with torch's SummaryWriter (event files appended on `--resume`)."""

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(folder))

    def step_group(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def epoch(self, row: dict, images: int) -> None:
        """One epoch's log row (`ssl_train.loop.train_epoch` plus evaluation); `images` trained on."""
        for key, tag in EPOCH_TAGS.items():
            if row.get(key) is not None:
                self.writer.add_scalar(tag, row[key], row["epoch"])
        self.writer.add_scalar("time/augment_ms_per_image", 1000 * row["augment_s"] / max(images, 1), row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def build_tracker(kind: str, run_folder: Path, main: bool) -> Tracker:
    """The `--logger` of this process (rank 0 logs, the others drop)."""
    if kind == "tensorboard" and main:
        return TensorBoardTracker(Path(run_folder) / FOLDER)
    return Tracker()
