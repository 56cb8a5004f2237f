"""The training loop: one readable function, `train(cfg)`.

Per step, three phases are timed separately with a synchronising timer (CUDA-synchronised on GPU,
so the split is true): `data` (waiting for the loader), `augment` (augpipe), `model` (forward,
backward, optimiser, online probe). Evaluation at epoch end is timed as `eval`. Totals, per-epoch
rows and accuracies go to DIR/result.json and DIR/log.csv; a checkpoint is written atomically at
every epoch end, so `--resume` restarts a killed run at the epoch it was in and, on CPU with the
same seed, reaches the same final metrics (each epoch's randomness is a function of seed and epoch).
"""
from __future__ import annotations

import csv
import io
import math
import os
import platform
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import augpipe
import augpipe.cpu
import augpipe.engines
import loaders
from ssl_train import dist
from ssl_train.backbones import build_backbone
from ssl_train.checkpoint import load_checkpoint, save_checkpoint, write_json, write_text
from ssl_train.config import TrainConfig
from ssl_train.evaluate import extract, knn_top1, probe_top1
from ssl_train.methods import build_method
from ssl_train.optim import adamw, build_optimizer, lr_at, scaled_lr
from timekeep import TimeAccount

NORMALIZE = "imagenet"
PHASES = ("data", "augment", "model", "eval")


class RunError(RuntimeError):
    """A run that cannot start or go on; the message says why and what to do."""


class NonFiniteLoss(RunError):
    pass


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


def prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    finished, started = (out / "result.json").exists(), (out / "checkpoint.pt").exists()
    if resume:
        if finished:
            raise RunError(f"--out {out}: this run already finished (result.json); nothing to resume")
        return
    if (finished or started) and not overwrite:
        what = "a finished run (result.json)" if finished else "an unfinished run (checkpoint.pt)"
        hint = "--overwrite to replace it" if finished else "--resume to continue it or --overwrite"
        raise RunError(f"--out {out}: holds {what}; pass {hint}, or choose another --out")
    if overwrite:
        for name in ("result.json", "checkpoint.pt", "log.csv", "config.json"):
            (out / name).unlink(missing_ok=True)


class Trainer(nn.Module):
    """Backbone + method in one module, so that DDP wraps a single forward."""

    def __init__(self, backbone: nn.Module, method: nn.Module):
        super().__init__()
        self.backbone, self.method = backbone, method

    def forward(self, views, labels=None):
        return self.method(self.backbone, views, labels)


def _versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "augpipe": "0.1.0"}


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    cfg.validate()
    device = pick_device(cfg.device)
    if device.type == "cpu":
        augpipe.cpu.tune_cpu_allocator()  # fresh batch-sized tensors without page faults (augpipe.cpu)
        torch.set_num_threads(cpu_threads(cfg.num_workers))
    rank, world = dist.init_from_env(device)
    main = rank == 0
    out = Path(cfg.out)
    if main:
        prepare_out(out, resume, overwrite)
    dist.barrier()
    if cfg.batch_size % world:
        raise RunError(f"--batch-size {cfg.batch_size} must be divisible by the {world} processes")
    torch.manual_seed(cfg.seed)

    # --- data: loaders (uint8 on the device) and augpipe (views) -------------------------------
    train_src, test_src = data_splits(cfg.data)
    common = dict(image_size=cfg.image_size, device=device, num_workers=cfg.num_workers, seed=cfg.seed)
    subset = cfg.train_subset or None
    train_loader = loaders.build_loader(cfg.loader, train_src, batch_size=cfg.batch_size // world, shuffle=True,
                                        drop_last=True, rank=rank, world_size=world, subset=subset, **common)
    eval_train = loaders.build_loader(cfg.loader, train_src, batch_size=512, shuffle=False, subset=subset, **common)
    eval_test = loaders.build_loader(cfg.loader, test_src, batch_size=512, shuffle=False, **common)
    num_classes = len(train_loader.classes)
    policy = augpipe.build_policy(cfg.policy, size=cfg.image_size, views=cfg.views, normalize=NORMALIZE,
                                  channels_last=cfg.channels_last, time_ops=True)
    augment = augpipe.engines.build(cfg.aug_engine, policy, **({"device": str(device), "batch_size": cfg.batch_size // world}
                                                              if cfg.aug_engine == "dali" else {}))
    timed_ops = isinstance(augment, augpipe.Policy)  # per-op seconds: augpipe only (others: the phase total)
    plain = augpipe.build_policy("none", size=cfg.image_size, views=1, normalize=NORMALIZE,
                                 channels_last=cfg.channels_last)
    to_input = lambda images: plain(images)[0]  # noqa: E731  (eval: resize + normalise only)

    # --- model ----------------------------------------------------------------------------------
    backbone, feat_dim = build_backbone(cfg.backbone, cfg.image_size)
    if cfg.channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
    method = build_method(cfg.method, feat_dim, cfg, num_classes)
    trainer = Trainer(backbone, method).to(device)
    if cfg.method == "byol":
        method._target(backbone)  # create the EMA target now, before DDP and the optimiser
    probe = nn.Linear(feat_dim, num_classes).to(device)
    peak_lr = scaled_lr(cfg.lr, cfg.batch_size, cfg.lr_scaling)
    params = [p for p in trainer.parameters() if p.requires_grad]
    optimizer = build_optimizer(cfg.optimizer, params, peak_lr, cfg.weight_decay, cfg.momentum)
    probe_opt = adamw(probe.parameters(), lr=cfg.probe_lr, weight_decay=1e-6)
    model = trainer
    if world > 1:
        model = nn.parallel.DistributedDataParallel(trainer, device_ids=[device.index] if device.type == "cuda" else None)
    forward = torch.compile(model) if cfg.compile else model
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext())

    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    start_epoch, history, totals = 0, [], {p: 0.0 for p in PHASES}
    op_totals: dict[str, float] = {}
    knn_init = None
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if state["config"] != cfg.to_dict():
            changed = sorted(k for k in cfg.to_dict() if state["config"].get(k) != cfg.to_dict()[k])
            raise RunError(f"--resume: the configuration differs from the checkpoint's in {', '.join(changed)}")
        trainer.load_state_dict(state["trainer"])
        probe.load_state_dict(state["probe"])
        optimizer.load_state_dict(state["optimizer"])
        probe_opt.load_state_dict(state["probe_opt"])
        start_epoch, history, totals = state["epoch"] + 1, state["history"], state["totals"]
        op_totals, knn_init = state["op_totals"], state["knn_init"]
        if main:
            print(f"resuming {out} at epoch {start_epoch + 1}/{cfg.epochs}", flush=True)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(cfg.to_dict(), out / "config.json")

    def evaluate(with_knn: bool) -> dict:
        account = TimeAccount(device)
        with account.phase("eval"):
            test_f, test_y = extract(backbone, eval_test, to_input, device)
            result = {"linear_top1": probe_top1(probe, test_f, test_y)}
            if with_knn:
                train_f, train_y = extract(backbone, eval_train, to_input, device)
                result["knn_top1"] = knn_top1(train_f, train_y, test_f, test_y, cfg.knn_k,
                                              cfg.knn_temperature, num_classes)
        result["eval_s"] = account.seconds["eval"]
        return result

    if knn_init is None and main:
        knn_init = evaluate(with_knn=True)["knn_top1"]  # the random-init floor, same architecture

    for epoch in range(start_epoch, cfg.epochs):
        trainer.train()
        train_loader.set_epoch(epoch)
        epoch_seed = cfg.seed * 1_000_003 + epoch
        generator = torch.Generator(device=device).manual_seed(epoch_seed)
        torch.manual_seed(epoch_seed)  # engines other than augpipe draw from torch's global state
        if hasattr(method, "generator"):
            method.generator = generator
        if timed_ops:
            augment.reset_timing()
        account = TimeAccount(device)
        # The loss is summed on the device and read back once every `check_every` steps (and at
        # the epoch's end): the hot path's only host read. A non-finite step poisons the sum, so
        # the check names the range of steps it happened in; checkpoints are written at epoch
        # ends after the check, so the last good one stays good.
        loss_sum = torch.zeros((), device=device)
        checked, seen = 0, 0
        batches = iter(train_loader)
        bar = None
        if progress and main:
            from tqdm import tqdm
            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
        for step in range(steps_per_epoch):
            global_step = epoch * steps_per_epoch + step
            with account.phase("data"):
                images, labels = next(batches)
            with account.phase("augment"):
                views = augment(images, generator=generator)
            with account.phase("model"):
                lr = lr_at(global_step, total_steps, warmup_steps, peak_lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with autocast:
                    loss, feats = forward(views, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                method.on_step_end(backbone, (global_step + 1) / total_steps)
                probe_loss = F.cross_entropy(probe(feats.detach().float()), labels)
                probe_opt.zero_grad(set_to_none=True)
                probe_loss.backward()
                probe_opt.step()
                loss_sum += loss.detach().float() * images.shape[0]
            seen += images.shape[0]
            if (step + 1) % cfg.check_every == 0 or step + 1 == steps_per_epoch:
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
        loss_sum = total
        row = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "lr": lr}
        epoch_seconds = account.seconds  # on CUDA: the epoch's one synchronisation for timing
        for phase in ("data", "augment", "model"):
            row[f"{phase}_s"] = epoch_seconds[phase]
            totals[phase] += epoch_seconds[phase]
        for name, secs in (augment.op_seconds() if timed_ops else {}).items():
            op_totals[name] = op_totals.get(name, 0.0) + secs
        row["images_per_s"] = seen * world / max(1e-9, sum(epoch_seconds.values()))
        if main:
            last = epoch + 1 == cfg.epochs
            row.update(evaluate(with_knn=last or (epoch + 1) % cfg.eval_every == 0))
            totals["eval"] += row["eval_s"]
            history.append(row)
            print(_epoch_line(row), flush=True)
            _write_csv(history, out / "log.csv")
            save_checkpoint({"config": cfg.to_dict(), "epoch": epoch, "trainer": trainer.state_dict(),
                             "probe": probe.state_dict(), "optimizer": optimizer.state_dict(),
                             "probe_opt": probe_opt.state_dict(), "history": history, "totals": totals,
                             "op_totals": op_totals, "knn_init": knn_init}, ckpt_path)
        dist.barrier()

    result = None
    if main:
        final = history[-1]
        train_s = totals["data"] + totals["augment"] + totals["model"]
        images_seen = steps_per_epoch * cfg.batch_size * cfg.epochs
        result = {
            "knn_top1": final.get("knn_top1"),
            "linear_top1": final["linear_top1"],
            "knn_top1_random_init": knn_init,
            "time": {"aug_engine": cfg.aug_engine, "data_s": totals["data"], "augment_s": totals["augment"], "model_s": totals["model"],
                     "eval_s": totals["eval"], "total_s": train_s + totals["eval"],
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
        write_json(result, out / "result.json")
    dist.barrier()
    return result


def _epoch_line(row: dict) -> str:
    knn = f" knn {row['knn_top1']:.3f}" if "knn_top1" in row else ""
    return (f"epoch {row['epoch']}: loss {row['loss']:.4f}{knn} probe {row['linear_top1']:.3f} | "
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
             f"online linear probe top-1 {result['linear_top1']:.3f}",
             f"time: data {t['data_s']:.1f}s | augment {t['augment_s']:.1f}s "
             f"({t['augment_ms_per_image']:.3f} ms/image) | model {t['model_s']:.1f}s | eval {t['eval_s']:.1f}s | "
             f"total {t['total_s']:.1f}s | {t['images_per_s']:.0f} img/s"]
    if t["augment_ops_s"]:
        lines.append("augment by op: " + ", ".join(f"{k} {v:.2f}s" for k, v in
                                                  sorted(t["augment_ops_s"].items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)


__all__ = ["RunError", "NonFiniteLoss", "train", "summary"]
