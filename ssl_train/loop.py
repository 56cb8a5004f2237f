"""The training loop, top-down: `train(cfg)` = build (`ssl_train.parts`), lock `--out`
(`ssl_train.rundir`), then the epochs; each epoch is steps, evaluation and a checkpoint.

Per step: `data` (waiting for the loader), `augment` (the policy on its engine), `model` (forward,
backward, optimiser, online probe), timed with CUDA events read once per epoch (the wall clock on
CPU); the loss is summed on the device and read every `check_every` steps (`LossWatch`). At each
epoch's end: evaluation (`eval`), a check that every parameter, buffer and optimiser state is
finite, then `log.csv` and an atomic checkpoint (`ssl_train.state.RunState`), so `--resume`
restarts a killed run at the epoch it was in and, on CPU with the same seed, reaches the same
final metrics (each epoch's randomness is a function of seed and epoch).
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import augpipe.cpu
import machine
from atomicio import write_json
from ssl_train import dist
from ssl_train.checkpoint import load_checkpoint, save_checkpoint
from ssl_train.config import TrainConfig
from ssl_train.evaluate import extract, knn_top1, probe_top1
from ssl_train.optim import lr_at
from ssl_train.parts import Parts, build, cpu_threads
from ssl_train.records import epoch_line, result_record, summary, write_csv
from ssl_train.rundir import RunDir, RunError
from ssl_train.state import RunState, config_changes
from timekeep import TimeAccount

PHASES = ("data", "augment", "model", "eval")


class NonFiniteLoss(RunError):
    """The loss or the model's state stopped being finite; the last good checkpoint is named."""


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict | None:
    cfg.validate()
    try:
        device = machine.pick_device(cfg.device)
    except ValueError as err:
        raise RunError(str(err)) from None
    if device.type == "cpu":
        augpipe.cpu.tune_cpu_allocator()  # fresh batch-sized tensors without page faults (augpipe.cpu)
        torch.set_num_threads(cpu_threads(cfg.num_workers))
    rank, world = dist.init_from_env(device)
    if cfg.batch_size % world:
        raise RunError(f"--batch-size {cfg.batch_size} must be divisible by the {world} processes")
    torch.manual_seed(cfg.seed)
    main = rank == 0
    folder = RunDir(Path(cfg.out), resume=resume, overwrite=overwrite) if main else nullcontext(Path(cfg.out))
    with folder as work:  # rank 0 owns the folder (checked before anything is built); the others write nothing
        parts = build(cfg, device, rank, world, progress)
        dist.barrier()
        result = run_epochs(cfg, parts, work, resume, device, world, main, progress)
        if main:
            folder.commit()
    dist.barrier()
    return result


def start_state(cfg: TrainConfig, parts: Parts, ckpt_path: Path, resume: bool, main: bool) -> RunState:
    """A fresh state, or the checkpoint's (restored into `parts`) when resuming."""
    if not (resume and ckpt_path.exists()):
        if resume and main:
            print(f"--resume: no checkpoint in {cfg.out} yet; starting the run", flush=True)
        return RunState(config=cfg.to_dict(), totals={p: 0.0 for p in PHASES})
    state = RunState.from_dict(load_checkpoint(ckpt_path))
    changed = config_changes(state.config, cfg.to_dict())
    if changed:
        raise RunError(f"--resume: the configuration differs from the checkpoint's in {', '.join(changed)}")
    state.restore(parts)
    if main:
        print(f"resuming {ckpt_path.parent} at epoch {state.epoch + 2}/{cfg.epochs}", flush=True)
    return state


def run_epochs(cfg: TrainConfig, parts: Parts, work: Path, resume: bool, device: torch.device, world: int,
               main: bool, progress: bool) -> dict | None:
    steps_per_epoch = len(parts.data.train)
    schedule = Schedule(steps_per_epoch * cfg.epochs, int(cfg.warmup_epochs * steps_per_epoch), parts.peak_lr)
    ckpt_path = work / "checkpoint.pt"
    state = start_state(cfg, parts, ckpt_path, resume, main)
    if main:
        work.mkdir(parents=True, exist_ok=True)
        write_json(cfg.to_dict(), work / "config.json")
        if state.knn_init is None:
            state.knn_init = evaluate(cfg, parts, device, with_knn=True)["knn_top1"]  # the random-init floor
    for epoch in range(state.epoch + 1, cfg.epochs):
        row, epoch_ops = train_epoch(cfg, parts, device, epoch, schedule, ckpt_path, progress and main)
        row["images_per_s"] *= world
        for phase in ("data", "augment", "model"):
            state.totals[phase] += row[f"{phase}_s"]
        for name, secs in epoch_ops.items():
            state.op_totals[name] = state.op_totals.get(name, 0.0) + secs
        if main:
            row.update(evaluate(cfg, parts, device, with_knn=epoch + 1 == cfg.epochs or (epoch + 1) % cfg.eval_every == 0))
            state.totals["eval"] += row["eval_s"]
            state.history.append(row)
            print(epoch_line(row), flush=True)
            end_epoch(state, parts, epoch, work, ckpt_path)
        dist.barrier()
    if not main:
        return None
    images = {"train": parts.data.train.dataset_size, "test": parts.data.eval_test.dataset_size}
    result = result_record(cfg, device, world, state, steps_per_epoch, images)
    write_json(result, work / "result.json")
    return result


def end_epoch(state: RunState, parts: Parts, epoch: int, work: Path, ckpt_path: Path) -> None:
    """Check the model's state is finite, then write log.csv and the checkpoint (atomically)."""
    state.epoch = epoch
    state.capture(parts)
    bad = state.first_nonfinite()
    if bad:
        last = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint was written"
        raise NonFiniteLoss(f"{bad} is not finite after epoch {epoch + 1}; stopped before checkpointing "
                            f"({last}); try a lower --lr")
    write_csv(state.history, work / "log.csv")
    save_checkpoint(state.to_dict(), ckpt_path)


@dataclass
class Schedule:
    total_steps: int
    warmup_steps: int
    peak_lr: float

    def lr(self, step: int) -> float:
        return lr_at(step, self.total_steps, self.warmup_steps, self.peak_lr)


class LossWatch:
    """The loss summed on the device and read back once every `check_every` steps (and at the
    epoch's end): the hot path's only host read. A non-finite step poisons the sum, so the check
    names the range of steps it happened in. Also drives the progress bar."""

    def __init__(self, cfg: TrainConfig, device: torch.device, epoch: int, steps: int, ckpt_path: Path, progress: bool):
        self.cfg, self.epoch, self.steps, self.ckpt_path = cfg, epoch, steps, ckpt_path
        self.loss_sum, self.total, self.checked, self.seen = torch.zeros((), device=device), 0.0, 0, 0
        self.bar = None
        if progress:
            from tqdm import tqdm  # only for the bar: the lent GPU machine may not have it
            self.bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)

    def add(self, step: int, loss: torch.Tensor, batch: int) -> None:
        self.loss_sum += loss * batch
        self.seen += batch
        if (step + 1) % self.cfg.check_every == 0 or step + 1 == self.steps:
            self.total = self.loss_sum.item()  # the one host read per check_every steps
            if not math.isfinite(self.total):
                last = f"the last good checkpoint is {self.ckpt_path}" if self.ckpt_path.exists() else "no checkpoint yet"
                raise NonFiniteLoss(f"loss became {self.total} at epoch {self.epoch + 1} between steps "
                                    f"{self.checked + 1} and {step + 1}; stopped ({last}); try a lower --lr")
            self.checked = step + 1
            if self.bar is not None:
                self.bar.set_postfix_str(f"loss {self.total / self.seen:.3f}")
        if self.bar is not None:
            self.bar.update()

    def close(self) -> float:
        """The epoch's mean loss."""
        if self.bar is not None:
            self.bar.close()
        return self.total / max(self.seen, 1)


def train_epoch(cfg: TrainConfig, parts: Parts, device: torch.device, epoch: int, schedule: Schedule,
                ckpt_path: Path, progress: bool) -> tuple[dict, dict]:
    """One epoch of steps; returns its log row and the policy's per-op seconds."""
    parts.trainer.train()
    parts.data.train.set_epoch(epoch)
    epoch_seed = cfg.seed * 1_000_003 + epoch
    generator = torch.Generator(device=device).manual_seed(epoch_seed)
    torch.manual_seed(epoch_seed)  # engines other than augpipe draw from torch's global state
    parts.method.begin_epoch(generator)
    parts.augment.reset_timing()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext()
    account, steps = TimeAccount(device), len(parts.data.train)
    watch = LossWatch(cfg, device, epoch, steps, ckpt_path, progress)
    batches = iter(parts.data.train)
    for step in range(steps):
        lr = schedule.lr(epoch * steps + step)
        with account.phase("data"):
            images, labels = next(batches)
        with account.phase("augment"):
            views = parts.augment(images, generator=generator)
        with account.phase("model"):
            loss = model_step(parts, views, labels, lr, autocast, (epoch * steps + step + 1) / schedule.total_steps)
            watch.add(step, loss, images.shape[0])
    seconds = account.seconds  # on CUDA: the epoch's one synchronisation for timing
    row = {"epoch": epoch + 1, "loss": watch.close(), "lr": lr,
           **{f"{phase}_s": seconds.get(phase, 0.0) for phase in ("data", "augment", "model")},
           "images_per_s": watch.seen / max(1e-9, sum(seconds.values()))}
    return row, parts.augment.op_seconds()


def model_step(parts: Parts, views: list[torch.Tensor], labels: torch.Tensor, lr: float, autocast,
               progress: float) -> torch.Tensor:
    """One optimiser step of the model (and of the online probe on the detached features);
    returns the loss, detached, on the device (never read here)."""
    for group in parts.optimizer.param_groups:
        group["lr"] = lr
    with autocast:
        loss, feats = parts.forward(views, labels)
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimizer.step()
    parts.method.on_step_end(parts.backbone, progress)
    if parts.labeled_train:
        probe_loss = F.cross_entropy(parts.probe(feats.detach().float()), labels)
        parts.probe_opt.zero_grad(set_to_none=True)
        probe_loss.backward()
        parts.probe_opt.step()
    return loss.detach().float()


def evaluate(cfg: TrainConfig, parts: Parts, device: torch.device, with_knn: bool) -> dict:
    """Online probe and kNN on the test split. With an unlabeled training split there is no probe
    (`linear_top1` None) and kNN votes with the even-numbered test images for the odd ones."""
    account = TimeAccount(device)
    with account.phase("eval"):
        test_f, test_y = extract(parts.backbone, parts.data.eval_test, parts.to_input, device)
        result = {"linear_top1": probe_top1(parts.probe, test_f, test_y) if parts.labeled_train else None}
        if with_knn:
            if parts.labeled_train:
                train_f, train_y = extract(parts.backbone, parts.data.eval_train, parts.to_input, device)
            else:
                train_f, train_y, test_f, test_y = test_f[0::2], test_y[0::2], test_f[1::2], test_y[1::2]
            result["knn_top1"] = knn_top1(train_f, train_y, test_f, test_y, cfg.knn_k, cfg.knn_temperature,
                                          parts.data.num_classes)
    result["eval_s"] = account.seconds["eval"]
    return result


__all__ = ["RunError", "NonFiniteLoss", "train", "summary"]
