"""The training loop, top-down: `train(cfg)` = build (`ssl_train.parts`: every bad flag fails
there, before anything is written), lock `--out` (`ssl_train.rundir`), then the epochs; each
epoch is steps, evaluation and a checkpoint.

Scalars go to `--logger` (`ssl_train.tracking`: rank 0, from values already read).

Per step: `data` (waiting for the loader), `augment` (the policy on its engine), `model` (forward,
backward, optimiser, online probe), timed with CUDA events read once per epoch (the wall clock on
CPU); the loss is summed on the device and read every `check_every` steps (`LossWatch`). At each
epoch's end: evaluation (`eval`), a check that every parameter, buffer and optimiser state is
finite, then `log.csv` and an atomic checkpoint (`ssl_train.state.RunState`). Between two steps,
a stop signal or `--checkpoint-every` writes a step checkpoint (`EpochState`: the epoch's random
states and running loss besides the model; `ssl_train.preempt`). `--resume` continues from
either, mid-epoch included, and on CPU with the same seed reaches the same metrics bit for bit
(each epoch's randomness is a function of seed and epoch, and a step checkpoint holds where it was).
"""
from __future__ import annotations

import math
import signal
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import augpipe.cpu
from _augpipe_shared import machine
from _augpipe_shared.atomicio import write_json
from _augpipe_shared.timing import TimeAccount
from ssl_train import dist, preempt
from ssl_train.checkpoint import load_checkpoint, save_checkpoint
from ssl_train.config import TrainConfig
from ssl_train.evaluate import extract, knn_top1, probe_top1
from ssl_train.optim import lr_at
from ssl_train.parts import Parts, build, cpu_threads
from ssl_train.preempt import Preempted, StepControl, StopRequests
from ssl_train.records import epoch_line, result_record, summary, write_csv
from ssl_train.runconfig import write_config
from ssl_train.rundir import RunDir, RunError
from ssl_train.state import RunState, config_changes
from ssl_train.tracking import Tracker, build_tracker

PHASES = ("data", "augment", "model", "eval")


class NonFiniteLoss(RunError):
    """The loss or the model's state stopped being finite; the last good checkpoint is named."""


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True,
          requeue: bool = False, config_format: str = "json") -> dict | None:
    """Train as `cfg` says into `cfg.out`; returns result.json's record on rank 0 (None elsewhere).

    A stop signal (SIGTERM, SIGUSR1, Ctrl-C: `ssl_train.preempt`) ends the run with a step
    checkpoint and raises `Preempted`; `requeue` then puts a SLURM job back in the queue.
    """
    cfg.validate()
    try:
        device = machine.pick_device(cfg.device)
    except ValueError as err:
        raise RunError(str(err)) from None
    if device.type == "cpu":
        augpipe.cpu.tune_cpu_allocator()  # fresh batch-sized tensors without page faults (augpipe.cpu)
        torch.set_num_threads(cpu_threads(cfg.num_workers, cfg.cpu_threads))
    rank, world = dist.init_from_env(device)
    if cfg.batch_size % world:
        raise RunError(f"--batch-size {cfg.batch_size} must be divisible by the {world} processes")
    torch.manual_seed(cfg.seed)
    main = rank == 0
    parts = build(cfg, device, rank, world, progress)  # every flag that can be wrong fails here, before --out is made
    folder = RunDir(Path(cfg.out), resume=resume, overwrite=overwrite) if main else nullcontext(Path(cfg.out))
    with StopRequests(announce=main) as stops, folder as work:  # rank 0 owns the folder; the others write nothing
        dist.barrier()
        control = StepControl(stops, cfg.checkpoint_every, world, device, main)
        try:
            result = run_epochs(cfg, parts, work, resume, device, world, main, progress, control, config_format)
        except Stopped as stop:
            dist.barrier()  # every rank waits for rank 0's checkpoint before any exits
            if main:
                folder.keep()
            where = f"epoch {stop.epoch + 1}, step {stop.step}" if stop.step else f"the end of epoch {stop.epoch + 1}"
            done = f"; {preempt.requeue()}" if requeue and main and stop.signum != signal.SIGINT else ""
            raise Preempted(f"stopped by {signal.Signals(stop.signum).name} at {where}, checkpoint "
                            f"{Path(work) / 'checkpoint.pt'}{done}", stop.signum) from None
        if main:
            folder.commit()
    dist.barrier()
    return result


class Stopped(Exception):
    """Raised inside the loop once the checkpoint at (epoch, step) is written, on a stop signal."""

    def __init__(self, signum: int, epoch: int, step: int):
        super().__init__(signum, epoch, step)
        self.signum, self.epoch, self.step = signum, epoch, step


def start_state(cfg: TrainConfig, parts: Parts, ckpt_path: Path, resume: bool, main: bool, world: int) -> RunState:
    """A fresh state, or the checkpoint's (restored into `parts`) when resuming."""
    if not (resume and ckpt_path.exists()):
        if resume and main:
            print(f"--resume: no checkpoint in {cfg.out} yet; starting the run", flush=True)
        return RunState(config=cfg.to_dict(), totals={p: 0.0 for p in PHASES})
    state = RunState.from_dict(load_checkpoint(ckpt_path))
    changed = config_changes(state.config, cfg.to_dict())
    if changed:
        raise RunError(f"--resume: the configuration differs from the checkpoint's in {', '.join(changed)}")
    if state.step and state.in_epoch.get("world") != world:
        raise RunError(f"--resume: {ckpt_path} stopped mid-epoch with {state.in_epoch.get('world')} processes; "
                       f"resume it with as many (this run has {world})")
    state.restore(parts)
    if main:
        at = f"epoch {state.epoch + 2}/{cfg.epochs}" + (f", step {state.step + 1}" if state.step else "")
        print(f"resuming {ckpt_path.parent} at {at}", flush=True)
    return state


def run_epochs(cfg: TrainConfig, parts: Parts, work: Path, resume: bool, device: torch.device, world: int,
               main: bool, progress: bool, control: StepControl, config_format: str = "json") -> dict | None:
    steps_per_epoch = len(parts.data.train)
    schedule = Schedule(steps_per_epoch * cfg.epochs, int(cfg.warmup_epochs * steps_per_epoch), parts.peak_lr)
    ckpt_path = work / "checkpoint.pt"
    state = start_state(cfg, parts, ckpt_path, resume, main, world)
    if main:
        work.mkdir(parents=True, exist_ok=True)
        write_config(cfg.to_dict(), work, config_format)  # config.json, and config.yaml for a YAML run
        if state.knn_init is None:
            state.knn_init = evaluate(cfg, parts, device, with_knn=True)["knn_top1"]  # the random-init floor
    tracker = build_tracker(cfg.logger, work, main)
    try:
        for epoch in range(state.epoch + 1, cfg.epochs):
            run_epoch(cfg, parts, work, device, world, main, progress, control, schedule, state, ckpt_path, epoch,
                      tracker)
    finally:
        tracker.close()
    if not main:
        return None
    images = {"train": parts.data.train.dataset_size, "test": parts.data.eval_test.dataset_size}
    result = result_record(cfg, device, world, state, steps_per_epoch, images)
    write_json(result, work / "result.json")
    return result


def run_epoch(cfg: TrainConfig, parts: Parts, work: Path, device: torch.device, world: int, main: bool,
              progress: bool, control: StepControl, schedule: "Schedule", state: RunState, ckpt_path: Path,
              epoch: int, tracker: Tracker) -> None:
    """One epoch: its steps, then (rank 0) evaluation, the log line and scalars, the checkpoint."""
    row, epoch_ops = train_epoch(cfg, parts, device, epoch, schedule, state, work, control, progress and main, tracker)
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
        tracker.epoch(row, len(parts.data.train) * cfg.batch_size)
        end_epoch(state, parts, epoch, work, ckpt_path)
    dist.barrier()
    control.saved()
    _, stop = control.decide(at_check=True)
    if stop and epoch + 1 < cfg.epochs:  # the epoch's checkpoint is written: stop there
        raise Stopped(control.stops.signum, epoch, 0)


def end_epoch(state: RunState, parts: Parts, epoch: int, work: Path, ckpt_path: Path) -> None:
    """Check the model's state is finite, then write log.csv and the checkpoint (atomically)."""
    state.epoch = epoch  # (train_epoch has cleared `step` and `in_epoch`: the epoch is whole)
    state.capture(parts)
    check_finite(state, ckpt_path, f"after epoch {epoch + 1}")
    write_csv(state.history, work / "log.csv")
    save_checkpoint(state.to_dict(), ckpt_path)


def check_finite(state: RunState, ckpt_path: Path, when: str) -> None:
    bad = state.first_nonfinite()
    if bad:
        last = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint was written"
        raise NonFiniteLoss(f"{bad} is not finite {when}; stopped before checkpointing ({last}); try a lower --lr")


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

    def __init__(self, cfg: TrainConfig, device: torch.device, epoch: int, steps: int, ckpt_path: Path,
                 progress: bool, start: int = 0, tracker: Tracker | None = None):
        self.cfg, self.epoch, self.steps, self.ckpt_path = cfg, epoch, steps, ckpt_path
        self.loss_sum, self.total, self.checked, self.seen = torch.zeros((), device=device), 0.0, 0, 0
        self.checked_total, self.checked_seen = 0.0, 0  # at the last check: the next group's start
        self.tracker = tracker or Tracker()
        self.bar = None
        if progress:
            from tqdm import tqdm  # only for the bar: the lent GPU machine may not have it
            self.bar = tqdm(total=steps, initial=start, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)

    def at_check(self, step: int) -> bool:
        return (step + 1) % self.cfg.check_every == 0 or step + 1 == self.steps

    def add(self, step: int, loss: torch.Tensor, batch: int, lr: float = 0.0) -> None:
        self.loss_sum += loss * batch
        self.seen += batch
        if self.at_check(step):
            self.total = self.loss_sum.item()  # the one host read per check_every steps
            if not math.isfinite(self.total):
                last = f"the last good checkpoint is {self.ckpt_path}" if self.ckpt_path.exists() else "no checkpoint yet"
                raise NonFiniteLoss(f"loss became {self.total} at epoch {self.epoch + 1} between steps "
                                    f"{self.checked + 1} and {step + 1}; stopped ({last}); try a lower --lr")
            self.checked = step + 1
            group = (self.total - self.checked_total) / max(self.seen - self.checked_seen, 1)
            self.tracker.step_group(self.epoch * self.steps + step + 1, group, lr)
            self.checked_total, self.checked_seen = self.total, self.seen
            if self.bar is not None:
                self.bar.set_postfix_str(f"loss {self.total / self.seen:.3f}")
        if self.bar is not None:
            self.bar.update()

    def state_dict(self) -> dict:
        return {"loss_sum": self.loss_sum.cpu(), "total": self.total, "checked": self.checked, "seen": self.seen,
                "checked_seen": self.checked_seen}

    def load_state_dict(self, saved: dict) -> None:
        self.loss_sum = saved["loss_sum"].to(self.loss_sum.device)
        self.total, self.checked, self.seen = saved["total"], saved["checked"], saved["seen"]
        self.checked_total, self.checked_seen = self.total, saved.get("checked_seen", self.seen)

    def close(self) -> float:
        """The epoch's mean loss."""
        if self.bar is not None:
            self.bar.close()
        return self.total / max(self.seen, 1)


class EpochState:
    """What a step checkpoint keeps of an unfinished epoch, beside the model (`RunState.in_epoch`):
    per rank, the epoch's generator, torch's global random state (engines other than augpipe
    draw from it) and the loss watch; from rank 0, the seconds so far. Restored, the epoch goes
    on with the same draws as if it had never stopped."""

    def __init__(self, generator: torch.Generator, watch: LossWatch, account: TimeAccount, augment, device):
        self.generator, self.watch, self.account, self.augment, self.device = generator, watch, account, augment, device
        self.carried = {"seconds": {}, "op_seconds": {}}  # the stopped run's, once `resume` took them

    def random_state(self) -> dict:
        state = {"generator": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def restore_random(self, saved: dict) -> None:
        self.generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch"])
        if "cuda" in saved:
            torch.cuda.set_rng_state(saved["cuda"], self.device)

    def seconds(self) -> dict:
        now = self.account.seconds
        return {p: now.get(p, 0.0) + self.carried["seconds"].get(p, 0.0) for p in ("data", "augment", "model")}

    def op_seconds(self) -> dict:
        ops = dict(self.carried["op_seconds"])
        for name, secs in self.augment.op_seconds().items():
            ops[name] = ops.get(name, 0.0) + secs
        return ops

    def save(self, state: RunState, parts: Parts, epoch: int, step: int, world: int, main: bool,
             ckpt_path: Path) -> None:
        """Write the step checkpoint after `step` steps of `epoch` (rank 0; every rank takes part)."""
        ranks = dist.gather_objects({"random": self.random_state(), "watch": self.watch.state_dict()})
        if main:
            state.step = step
            state.in_epoch = {"world": world, "ranks": ranks, "seconds": self.seconds(), "op_seconds": self.op_seconds()}
            state.capture(parts)
            check_finite(state, ckpt_path, f"at epoch {epoch + 1}, step {step}")
            save_checkpoint(state.to_dict(), ckpt_path)
        dist.barrier()

    def resume(self, saved: dict, rank: int) -> None:
        """Take the running state of a stopped epoch (the random state: `restore_random`, after
        the loader's first batch, whose iterator draws from torch's global state)."""
        self.watch.load_state_dict(saved["ranks"][rank]["watch"])
        self.carried = {"seconds": saved["seconds"], "op_seconds": saved["op_seconds"]}


def start_epoch(cfg: TrainConfig, parts: Parts, device: torch.device, epoch: int) -> torch.Generator:
    """The epoch's seeds (its generator, torch's global state) and its start told to the data,
    the method (`epoch`, `begin_epoch`) and the timers; returns the epoch's generator."""
    parts.trainer.train()
    parts.data.train.set_epoch(epoch)
    epoch_seed = cfg.seed * 1_000_003 + epoch
    generator = torch.Generator(device=device).manual_seed(epoch_seed)
    torch.manual_seed(epoch_seed)  # engines other than augpipe draw from torch's global state
    parts.method.epoch = epoch
    parts.method.begin_epoch(generator)
    parts.augment.reset_timing()
    return generator


def train_epoch(cfg: TrainConfig, parts: Parts, device: torch.device, epoch: int, schedule: Schedule,
                state: RunState | None = None, work: Path | None = None, control: StepControl | None = None,
                progress: bool = False, tracker: Tracker | None = None) -> tuple[dict, dict]:
    """One epoch of steps (from the step a step checkpoint stopped at); returns its log row and
    the policy's per-op seconds. Raises `Stopped` after a stop signal's checkpoint. Without a
    `state` and `control` (tests, notebooks) it starts at step 0 and never checkpoints."""
    state = state or RunState(config=cfg.to_dict())
    control = control or StepControl(StopRequests(), 0, 1, device, True)
    work = work or Path(cfg.out)
    generator = start_epoch(cfg, parts, device, epoch)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext()
    account, steps, start = TimeAccount(device), len(parts.data.train), state.step
    ckpt_path, rank, world = work / "checkpoint.pt", dist.rank(), dist.world_size()
    aug_threads = cfg.aug_threads if device.type == "cpu" else 0
    watch = LossWatch(cfg, device, epoch, steps, ckpt_path, progress, start, tracker)
    running = EpochState(generator, watch, account, parts.augment, device)
    if start:
        running.resume(state.in_epoch, rank)
        parts.data.train.skip(start)
    batches = iter(parts.data.train)
    for step in range(start, steps):
        lr = schedule.lr(epoch * steps + step)
        with account.phase("data"):
            images, labels = next(batches)
        if step == start and start:
            running.restore_random(state.in_epoch["ranks"][rank]["random"])
        with account.phase("augment"), augpipe.cpu.intra_op_threads(aug_threads):
            views = parts.augment(images, generator=generator)
        with account.phase("model"):
            loss = model_step(parts, views, labels, lr, autocast, (epoch * steps + step + 1) / schedule.total_steps)
            watch.add(step, loss, images.shape[0], lr)
        save, stop = control.decide(watch.at_check(step))
        if (save or stop) and step + 1 < steps:  # the epoch's last step: its own checkpoint follows
            running.save(state, parts, epoch, step + 1, world, control.main, ckpt_path)
            control.saved()
            if stop:
                watch.close()
                raise Stopped(control.stops.signum, epoch, step + 1)
    state.step, state.in_epoch = 0, {}
    seconds = running.seconds()  # on CUDA: the epoch's one synchronisation for timing
    row = {"epoch": epoch + 1, "loss": watch.close(), "lr": lr,
           **{f"{phase}_s": seconds[phase] for phase in ("data", "augment", "model")},
           "images_per_s": watch.seen / max(1e-9, sum(seconds.values()))}
    return row, running.op_seconds()


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
    parts.method.after_backward()
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


__all__ = ["RunError", "NonFiniteLoss", "Preempted", "train", "summary"]
