"""`make gpu-check` (CUDA, <= 8 minutes) and `make gpu-check-dry` (the same on the CPU at toy sizes).

Writes OUT/gpu-check.json (and the run folders) with the same keys in both modes:
  device, versions, mode                     where it ran
  bench            augpipe eager / compiled vs Kornia eager / compiled (vs DALI if importable),
                   images/s and first-call seconds (compilation), per size and batch
  syncs_per_call   device->host syncs of one augpipe call on the device's default path: counted by
                   torch.cuda.set_sync_debug_mode on CUDA, by augpipe.diagnostics on the CPU
  gpu_tests        exit status of `pytest -m gpu` (skipped in dry mode: no CUDA)
  train            a short SimCLR run: s/epoch (after the first, which compiles) and the projected
                   time to 100 epochs; ResNet-18 on CIFAR-10 on CUDA, the small ConvNet on digits dry
  recipes          the auto-augment recipes (cifar-aa, timm-ra, trivialaugment), augpipe eager vs
                   Kornia vs torchvision per image, at 224 px b256 (written last)
Every section is written as soon as it is measured, so a run cut short keeps what it had.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the GPU machine runs the checkout as it is, not installed: E402 below

from _augpipe_shared import machine  # noqa: E402
from _augpipe_shared.atomicio import atomic_write_bytes  # noqa: E402
from augpipe import build_policy  # noqa: E402
from augpipe.bench import run_bench  # noqa: E402
from augpipe.diagnostics import count_ops  # noqa: E402

# (size, batch) per mode; engines in the order they are compared
SIZES = {"cuda": [(32, 512), (224, 256)], "dry": [(16, 16), (32, 8)]}
ENGINES = ["augpipe-eager", "augpipe-compiled", "kornia", "kornia-compiled", "dali"]
RECIPES = ("cifar-aa", "timm-ra", "trivialaugment")  # per-sample auto-augment, eager (no compile wait)
RECIPE_ENGINES = ["augpipe-eager", "kornia", "torchvision"]


def cuda_syncs(policy, images, generator) -> int:
    """Syncs of one call, as CUDA reports them (set_sync_debug_mode warns on each)."""
    policy(images, generator=generator)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            policy(images, generator=generator)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def gpu_tests(dry: bool):
    """1. `pytest -m gpu` first: a broken CUDA path should not cost the whole window."""
    if dry:
        return "skipped (dry)"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    return {"returncode": proc.returncode, "tail": proc.stdout[-2000:]}


def syncs_per_call(device: torch.device) -> int:
    """2. Syncs of one call on the device's default path (CUDA's own count, or augpipe's on the CPU)."""
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    if device.type == "cuda":
        return cuda_syncs(build_policy("simclr", size=32, views=2, compile=False), images, gen)
    blend = build_policy("simclr", size=32, views=2, gating="blend")
    blend(images, generator=gen)
    return count_ops(lambda: blend(images, generator=gen)).sync_count


def training_command(args, device: torch.device, run_dir: Path) -> list[str] | None:
    """4. The short SimCLR run: ResNet-18 on CIFAR-10 on CUDA, the small ConvNet on digits dry."""
    if args.dry:
        data, extra = "digits", ["--backbone", "small", "--batch-size", "128", "--image-size", "16",
                                 "--num-workers", "0", "--knn-k", "10"]
    else:
        data = args.cifar
        if data.endswith(".tar.gz"):
            from experiments.runner import resolve_data
            from loaders.sources.cache import cache_dir
            data = resolve_data(data, cache_dir() / "experiments-data")
        extra = ["--backbone", "resnet18", "--batch-size", "512", "--optimizer", "lars", "--lr", "1.0",
                 "--weight-decay", "1e-6", "--proj-hidden", "2048", "--temperature", "0.2", "--precision", "bf16",
                 "--channels-last", "--compile", "--num-workers", str(min(12, os.cpu_count() or 1))]
    if not data:
        return None
    return [sys.executable, "-m", "ssl_train", "--data", data, "--method", "simclr", "--policy", "simclr-cifar",
            "--epochs", str(args.train_epochs), "--eval-every", str(args.train_epochs), "--warmup-epochs", "1",
            "--device", device.type, "--no-progress", "--out", str(run_dir), "--overwrite", *extra]


def training_run(cmd: list[str], run_dir: Path) -> dict:
    """s/epoch (after the first, which compiles) and the projected time to 100 epochs."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=420)
    train = {"command": " ".join(cmd[1:]), "returncode": proc.returncode, "wall_s": round(time.perf_counter() - t0, 1),
             "tail": (proc.stdout + proc.stderr)[-1500:]}
    result_path = run_dir / "result.json"
    if proc.returncode == 0 and result_path.exists():
        result = json.loads(result_path.read_text())
        per_epoch = [r["data_s"] + r["augment_s"] + r["model_s"] for r in result["epochs"]]
        steady = per_epoch[1:] or per_epoch
        train.update(s_per_epoch=per_epoch, steady_s_per_epoch=sum(steady) / len(steady),
                     projected_100_epochs_min=round(100 * sum(steady) / len(steady) / 60, 1),
                     knn_top1=result["knn_top1"], time=result["time"])
    return train


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry", action="store_true", help="CPU, toy sizes: checks the script, not the GPU")
    parser.add_argument("--out", default="gpu-check-results")
    parser.add_argument("--cifar", default="", help="CIFAR-10 folder or .tar.gz for the training run (CUDA)")
    parser.add_argument("--train-epochs", type=int, default=3)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.dry and not torch.cuda.is_available():
        print("gpu-check: no CUDA on this machine (use --dry / make gpu-check-dry)", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry else "cuda")
    report = {"mode": "dry" if args.dry else "cuda", "device": str(device),
              "versions": machine.versions("torchvision", "kornia", "nvidia.dali"),
              "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None}
    path = out / "gpu-check.json"

    def save():  # every section as soon as it is measured: a run cut short keeps what it had
        atomic_write_bytes(path, (json.dumps(report, indent=1) + "\n").encode())

    save()
    report["gpu_tests"] = gpu_tests(args.dry)
    status = isinstance(report["gpu_tests"], dict) and report["gpu_tests"]["returncode"] != 0
    save()
    report["syncs_per_call"] = syncs_per_call(device)
    status |= report["syncs_per_call"] != 0
    save()
    report["bench"] = []  # 3. augpipe eager / compiled vs Kornia eager / compiled (vs DALI)
    for size, batch in SIZES["dry" if args.dry else "cuda"]:
        report["bench"] += run_bench(["simclr", "simclr[rrc.antialias=true]"], ENGINES, [size], device, batch=batch,
                                     warmup=1 if args.dry else 3, repeats=2 if args.dry else 10,
                                     log=lambda s: print(s, flush=True))
        save()
    cmd = training_command(args, device, out / "train")
    if cmd is None:
        report["train"] = "skipped: no --cifar archive (copy CIFAR-10's JPEG archive to .gpu-data/cifar10-jpeg.tar.gz)"
    else:
        report["train"] = training_run(cmd, out / "train")
        status |= report["train"]["returncode"] != 0
    save()
    # 5. last, so that nothing above waits on it: the torchvision recipes (issue 18) per engine
    size, batch = (16, 8) if args.dry else (224, 256)
    report["recipes"] = run_bench(list(RECIPES), RECIPE_ENGINES, [size], device, batch=batch,
                                  warmup=1 if args.dry else 2, repeats=2 if args.dry else 5,
                                  log=lambda s: print(s, flush=True))
    report["status"] = int(status)
    save()
    print(f"wrote {path} (status {int(status)})")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
