"""The training loop: `train(cfg)` = build everything, then lock `--out`, then run the epochs.

1. `build(cfg)`: loaders, policy and engine, model, method, optimisers. Every flag that can be
   wrong fails here, before `--out` is touched.
2. `RunDir`: the folder is locked; an overwrite trains into a staging folder swapped in at the end.
3. Epochs (`train_epoch`): per step `data` (waiting for the loader), `augment` (the policy on its
   engine), `model` (forward, backward, optimiser, online probe), timed with CUDA events read once
   per epoch (the wall clock on CPU); the loss is summed on the device and read every
   `check_every` steps. At each epoch's end: evaluation (`eval`), a check that every parameter,
   buffer and optimiser state is finite, then `log.csv` and an atomic checkpoint, so `--resume`
   restarts a killed run at the epoch it was in and, on CPU with the same seed, reaches the same
   final metrics (each epoch's randomness is a function of seed and epoch).
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import math
import os
import platform
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

import atomicio
import augpipe
import augpipe.cpu
import augpipe.engines
import loaders
import timekeep
from ssl_train import dist
from ssl_train.backbones import build_backbone
from ssl_train.checkpoint import load_checkpoint, save_checkpoint, write_json, write_text
from ssl_train.config import TrainConfig
from ssl_train.evaluate import extract, knn_top1, probe_top1
from ssl_train.methods import build_method
from ssl_train.optim import adamw, build_optimizer, lr_at, scaled_lr
from ssl_train.rundir import RunDir, RunError
from timekeep import TimeAccount

NORMALIZE = "imagenet"
PHASES = ("data", "augment", "model", "eval")
PATH_FIELDS = ("out",)  # config fields that name places, not content: ignored when resuming


class NonFiniteLoss(RunError):
    """The loss or the model's state stopped being finite; the last good checkpoint is named."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: CUDA is not available on this machine (use cpu or auto)")
    return torch.device(name)


def cpu_threads(num_workers: int) -> int:
    """Intra-op threads of the main process on CPU: the cores the loader workers leave free.

    Workers decode on their own cores; a main process that also spreads every op over all cores
    makes both wait on each other (on 2 cores with 2 workers, hundreds of small parallel regions
    per step spin against the decoders). One thread at least.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - num_workers) if num_workers > 0 else cores


def data_splits(data: str) -> tuple[str, str]:
    """`digits` -> embedded train/test; PATH -> PATH/train and PATH/test."""
    if data in loaders.EMBEDDED:
        return data, f"{data}:test"
    root = Path(data)
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise RunError(f"--data {data}: expected an embedded name ({', '.join(loaders.EMBEDDED)}) or a folder "
                       "with train/ and test/ ImageFolders")
    return str(root / "train"), str(root / "test")


class Trainer(nn.Module):
    """Backbone + method in one module, so that DDP wraps a single forward."""

    def __init__(self, backbone: nn.Module, method: nn.Module):
        super().__init__()
        self.backbone, self.method = backbone, method

    def forward(self, views, labels=None):
        return self.method(self.backbone, views, labels)


def source_digest(roots: list[Path]) -> str:
    """A short hash of every .py file under `roots` (path and bytes): the code that made a result.

    The same config and seed reproduce bit for bit only with the same code; a result's digest tells
    whether another run may stand for it (`experiments.runner.finished_twin`)."""
    h = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            h.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


# the packages whose code decides a run's numbers (experiments/ only plans runs)
CODE_ROOTS = [Path(m.__file__).parent for m in (augpipe, loaders, timekeep, atomicio)] + [Path(__file__).parent]


def code_digest() -> str:
    """The digest of this installation's run code (`versions.code` in every result.json)."""
    return source_digest(CODE_ROOTS)


def _package_version() -> str:
    try:
        return importlib.metadata.version("augpipe")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "augpipe": _package_version(), "code": code_digest()}


@dataclass
class Parts:
    """Everything a run is made of, built before `--out` is touched."""
    train_loader: object
    eval_train: object
    eval_test: object
    num_classes: int
    augment: Callable
    to_input: Callable
    backbone: nn.Module
    method: nn.Module
    trainer: nn.Module
    forward: Callable
    probe: nn.Linear
    optimizer: torch.optim.Optimizer
    probe_opt: torch.optim.Optimizer
    peak_lr: float

    @property
    def labeled_train(self) -> bool:
        """An unlabeled training folder pretrains without the online probe; kNN then uses the
        labelled test split alone (`evaluate`)."""
        return bool(self.train_loader.classes)

    @property
    def timed_ops(self) -> bool:  # per-op seconds: augpipe only (the other engines: the phase total)
        return isinstance(self.augment, augpipe.Policy)


def build(cfg: TrainConfig, device: torch.device, rank: int, world: int, progress: bool = True) -> Parts:
    train_src, test_src = data_splits(cfg.data)
    common = dict(image_size=cfg.image_size, device=device, num_workers=cfg.num_workers, seed=cfg.seed,
                  progress=progress)
    subset = cfg.train_subset or None
    train_loader = loaders.build_loader(cfg.loader, train_src, batch_size=cfg.batch_size // world, shuffle=True,
                                        drop_last=True, rank=rank, world_size=world, subset=subset, **common)
    if len(train_loader) == 0:
        raise RunError(f"--batch-size {cfg.batch_size}: larger than the training split ({train_src}); "
                       "lower it or use more images")
    eval_train = loaders.build_loader(cfg.loader, train_src, batch_size=512, shuffle=False, subset=subset, **common)
    # the same test images whatever the run's seed, so that seeds and runs compare on one set
    eval_test = loaders.build_loader(cfg.loader, test_src, batch_size=512, shuffle=False,
                                     subset=cfg.test_subset or None, **{**common, "seed": 0})
    num_classes = len(eval_test.classes)
    if not num_classes:
        raise RunError(f"--data {cfg.data}: the test split {test_src} is unlabeled; evaluation needs a labelled "
                       "test split (test/<class>/<image>)")
    if not train_loader.classes and cfg.method == "supervised":
        raise RunError(f"--method supervised: the training split {train_src} is unlabeled")
    # cpu_threads="keep": the loop pins torch's threads (cpu_threads()); a count that followed the
    # load would change the model's float reductions from run to run (same seed, same result).
    policy = augpipe.build_policy(cfg.policy, size=cfg.image_size, views=cfg.views, normalize=NORMALIZE,
                                  channels_last=cfg.channels_last, time_ops=True, cpu_threads="keep")
    engine_options = {"device": str(device), "batch_size": cfg.batch_size // world} if cfg.aug_engine == "dali" else {}
    augment = augpipe.engines.build(cfg.aug_engine, policy, **engine_options)
    plain = augpipe.build_policy("none", size=cfg.image_size, views=1, normalize=NORMALIZE,
                                 channels_last=cfg.channels_last, cpu_threads="keep")

    backbone, feat_dim = build_backbone(cfg.backbone, cfg.image_size)
    if cfg.channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
    method = build_method(cfg.method, feat_dim, cfg, num_classes)
    trainer = Trainer(backbone, method).to(device)
    method.setup(backbone)  # before DDP and the optimiser see the parameters
    probe = nn.Linear(feat_dim, num_classes).to(device)
    peak_lr = scaled_lr(cfg.lr, cfg.batch_size, cfg.lr_scaling)
    optimizer = build_optimizer(cfg.optimizer, [p for p in trainer.parameters() if p.requires_grad], peak_lr,
                                cfg.weight_decay, cfg.momentum)
    probe_opt = adamw(probe.parameters(), lr=cfg.probe_lr, weight_decay=1e-6)
    model = trainer
    if world > 1:
        model = nn.parallel.DistributedDataParallel(trainer, device_ids=[device.index] if device.type == "cuda" else None)
    return Parts(train_loader, eval_train, eval_test, num_classes, augment, lambda images: plain(images)[0],
                 backbone, method, trainer, torch.compile(model) if cfg.compile else model, probe, optimizer,
                 probe_opt, peak_lr)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict | None:
    cfg.validate()
    device = pick_device(cfg.device)
    if device.type == "cpu":
        augpipe.cpu.tune_cpu_allocator()  # fresh batch-sized tensors without page faults (augpipe.cpu)
        torch.set_num_threads(cpu_threads(cfg.num_workers))
    rank, world = dist.init_from_env(device)
    if cfg.batch_size % world:
        raise RunError(f"--batch-size {cfg.batch_size} must be divisible by the {world} processes")
    torch.manual_seed(cfg.seed)
    parts = build(cfg, device, rank, world, progress)
    main = rank == 0
    folder = RunDir(Path(cfg.out), resume=resume, overwrite=overwrite) if main else nullcontext(Path(cfg.out))
    with folder as work:  # rank 0 owns the folder; the other ranks write nothing
        dist.barrier()
        result = run_epochs(cfg, parts, work, resume, device, world, main, progress)
        if main:
            folder.commit()
    dist.barrier()
    return result


def run_epochs(cfg: TrainConfig, parts: Parts, work: Path, resume: bool, device: torch.device, world: int,
               main: bool, progress: bool) -> dict | None:
    steps_per_epoch = len(parts.train_loader)
    schedule = Schedule(steps_per_epoch * cfg.epochs, int(cfg.warmup_epochs * steps_per_epoch), parts.peak_lr)
    start_epoch, history, totals, op_totals, knn_init = 0, [], {p: 0.0 for p in PHASES}, {}, None
    ckpt_path = work / "checkpoint.pt"
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        changed = config_changes(state["config"], cfg.to_dict())
        if changed:
            raise RunError(f"--resume: the configuration differs from the checkpoint's in {', '.join(changed)}")
        parts.trainer.load_state_dict(state["trainer"])
        parts.probe.load_state_dict(state["probe"])
        parts.optimizer.load_state_dict(state["optimizer"])
        parts.probe_opt.load_state_dict(state["probe_opt"])
        start_epoch, history, totals = state["epoch"] + 1, state["history"], state["totals"]
        op_totals, knn_init = state["op_totals"], state["knn_init"]
        if main:
            print(f"resuming {work} at epoch {start_epoch + 1}/{cfg.epochs}", flush=True)
    if main:
        work.mkdir(parents=True, exist_ok=True)
        write_json(cfg.to_dict(), work / "config.json")
    if knn_init is None and main:
        knn_init = evaluate(cfg, parts, device, with_knn=True)["knn_top1"]  # the random-init floor

    for epoch in range(start_epoch, cfg.epochs):
        row, epoch_ops = train_epoch(cfg, parts, device, epoch, schedule, ckpt_path, progress and main)
        row["images_per_s"] *= world
        for phase in ("data", "augment", "model"):
            totals[phase] += row[f"{phase}_s"]
        for name, secs in epoch_ops.items():
            op_totals[name] = op_totals.get(name, 0.0) + secs
        if main:
            row.update(evaluate(cfg, parts, device, with_knn=epoch + 1 == cfg.epochs or (epoch + 1) % cfg.eval_every == 0))
            totals["eval"] += row["eval_s"]
            history.append(row)
            print(_epoch_line(row), flush=True)
            state = {"config": cfg.to_dict(), "epoch": epoch, "trainer": parts.trainer.state_dict(),
                     "probe": parts.probe.state_dict(), "optimizer": parts.optimizer.state_dict(),
                     "probe_opt": parts.probe_opt.state_dict(), "history": history, "totals": totals,
                     "op_totals": op_totals, "knn_init": knn_init}
            bad = first_nonfinite({k: state[k] for k in ("trainer", "probe", "optimizer", "probe_opt")})
            if bad:
                last = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint was written"
                raise NonFiniteLoss(f"{bad} is not finite after epoch {epoch + 1}; stopped before checkpointing "
                                    f"({last}); try a lower --lr")
            _write_csv(history, work / "log.csv")
            save_checkpoint(state, ckpt_path)
        dist.barrier()
    if not main:
        return None
    result = _result(cfg, device, world, history, totals, op_totals, knn_init, steps_per_epoch)
    write_json(result, work / "result.json")
    return result


@dataclass
class Schedule:
    total_steps: int
    warmup_steps: int
    peak_lr: float

    def lr(self, step: int) -> float:
        return lr_at(step, self.total_steps, self.warmup_steps, self.peak_lr)


def train_epoch(cfg: TrainConfig, parts: Parts, device: torch.device, epoch: int, schedule: Schedule,
                ckpt_path: Path, progress: bool) -> tuple[dict, dict]:
    """One epoch of steps; returns its log row and the policy's per-op seconds."""
    parts.trainer.train()
    parts.train_loader.set_epoch(epoch)
    epoch_seed = cfg.seed * 1_000_003 + epoch
    generator = torch.Generator(device=device).manual_seed(epoch_seed)
    torch.manual_seed(epoch_seed)  # engines other than augpipe draw from torch's global state
    parts.method.begin_epoch(generator)
    if parts.timed_ops:
        parts.augment.reset_timing()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext()
    account = TimeAccount(device)
    steps = len(parts.train_loader)
    # The loss is summed on the device and read back once every `check_every` steps (and at the
    # epoch's end): the hot path's only host read. A non-finite step poisons the sum, so the
    # check names the range of steps it happened in.
    loss_sum, total, checked, seen = torch.zeros((), device=device), 0.0, 0, 0
    batches = iter(parts.train_loader)
    bar = None
    if progress:
        from tqdm import tqdm  # only for the bar: the lent GPU machine may not have it
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
    for step in range(steps):
        lr = schedule.lr(epoch * steps + step)
        with account.phase("data"):
            images, labels = next(batches)
        with account.phase("augment"):
            views = parts.augment(images, generator=generator)
        with account.phase("model"):
            for group in parts.optimizer.param_groups:
                group["lr"] = lr
            with autocast:
                loss, feats = parts.forward(views, labels)
            parts.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            parts.optimizer.step()
            parts.method.on_step_end(parts.backbone, (epoch * steps + step + 1) / schedule.total_steps)
            if parts.labeled_train:
                probe_loss = F.cross_entropy(parts.probe(feats.detach().float()), labels)
                parts.probe_opt.zero_grad(set_to_none=True)
                probe_loss.backward()
                parts.probe_opt.step()
            loss_sum += loss.detach().float() * images.shape[0]
        seen += images.shape[0]
        if (step + 1) % cfg.check_every == 0 or step + 1 == steps:
            total = loss_sum.item()  # the one host read per check_every steps
            if not math.isfinite(total):
                last = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint yet"
                raise NonFiniteLoss(f"loss became {total} at epoch {epoch + 1} between steps {checked + 1} and "
                                    f"{step + 1}; stopped ({last}); try a lower --lr")
            checked = step + 1
            if bar is not None:
                bar.set_postfix_str(f"loss {total / seen:.3f}")
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    seconds = account.seconds  # on CUDA: the epoch's one synchronisation for timing
    row = {"epoch": epoch + 1, "loss": total / max(seen, 1), "lr": lr,
           **{f"{phase}_s": seconds.get(phase, 0.0) for phase in ("data", "augment", "model")},
           "images_per_s": seen / max(1e-9, sum(seconds.values()))}
    return row, parts.augment.op_seconds() if parts.timed_ops else {}


def evaluate(cfg: TrainConfig, parts: Parts, device: torch.device, with_knn: bool) -> dict:
    """Online probe and kNN on the test split. With an unlabeled training split there is no probe
    (`linear_top1` None) and kNN votes with the even-numbered test images for the odd ones."""
    account = TimeAccount(device)
    with account.phase("eval"):
        test_f, test_y = extract(parts.backbone, parts.eval_test, parts.to_input, device)
        result = {"linear_top1": probe_top1(parts.probe, test_f, test_y) if parts.labeled_train else None}
        if with_knn:
            if parts.labeled_train:
                train_f, train_y = extract(parts.backbone, parts.eval_train, parts.to_input, device)
            else:
                train_f, train_y, test_f, test_y = test_f[0::2], test_y[0::2], test_f[1::2], test_y[1::2]
            result["knn_top1"] = knn_top1(train_f, train_y, test_f, test_y, cfg.knn_k, cfg.knn_temperature,
                                          parts.num_classes)
    result["eval_s"] = account.seconds["eval"]
    return result


def config_changes(saved: dict, current: dict) -> list[str]:
    """Fields that differ, ignoring those that only name places (a moved run resumes)."""
    return sorted(k for k in current if k not in PATH_FIELDS and saved.get(k) != current[k])


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


def _result(cfg, device, world, history, totals, op_totals, knn_init, steps_per_epoch) -> dict:
    final = history[-1]
    train_s = totals["data"] + totals["augment"] + totals["model"]
    images_seen = steps_per_epoch * cfg.batch_size * cfg.epochs
    return {
        "knn_top1": final.get("knn_top1"),
        "linear_top1": final["linear_top1"],
        "knn_top1_random_init": knn_init,
        "time": {"aug_engine": cfg.aug_engine, "data_s": totals["data"], "augment_s": totals["augment"],
                 "model_s": totals["model"], "eval_s": totals["eval"], "total_s": train_s + totals["eval"],
                 "augment_ops_s": op_totals,
                 "augment_ms_per_image": 1000 * totals["augment"] / max(images_seen, 1),
                 "images_per_s": images_seen / max(train_s, 1e-9)},
        "epochs": history,
        "config": cfg.to_dict(),
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "world_size": world,
        "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "versions": _versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _epoch_line(row: dict) -> str:
    knn = f" knn {row['knn_top1']:.3f}" if "knn_top1" in row else ""
    probe = f" probe {row['linear_top1']:.3f}" if row["linear_top1"] is not None else ""
    return (f"epoch {row['epoch']}: loss {row['loss']:.4f}{knn}{probe} | "
            f"data {row['data_s']:.1f}s augment {row['augment_s']:.1f}s model {row['model_s']:.1f}s "
            f"eval {row['eval_s']:.1f}s | {row['images_per_s']:.0f} img/s")


def _write_csv(history: list[dict], path: Path) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(buf.getvalue(), path)


def summary(result: dict) -> str:
    t = result["time"]
    knn = result["knn_top1"]
    lines = [f"kNN top-1 {knn:.3f} (random init {result['knn_top1_random_init']:.3f}), "
             + (f"online linear probe top-1 {result['linear_top1']:.3f}" if result["linear_top1"] is not None
                else "no online probe (unlabeled training split)"),
             f"time: data {t['data_s']:.1f}s | augment {t['augment_s']:.1f}s "
             f"({t['augment_ms_per_image']:.3f} ms/image) | model {t['model_s']:.1f}s | eval {t['eval_s']:.1f}s | "
             f"total {t['total_s']:.1f}s | {t['images_per_s']:.0f} img/s"]
    if t["augment_ops_s"]:
        lines.append("augment by op: " + ", ".join(f"{k} {v:.2f}s" for k, v in
                                                  sorted(t["augment_ops_s"].items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)


__all__ = ["RunError", "NonFiniteLoss", "train", "summary"]
