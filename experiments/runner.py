"""Expand a named experiment into training runs and run the ones not finished yet.

An experiment is `configs/NAME.json`: a claim and a list of runs, each a few `TrainConfig`
overrides on top of the scale's base (`configs/scales.json`: `cpu` runs here, `gpu` is ready to
run on one GPU). Run folders are `RESULTS/NAME/RUN-sSEED`; a run with a result.json is skipped,
one with a checkpoint is resumed, so an interrupted experiment continues where it stopped.
"""
from __future__ import annotations

import json
import tarfile
from dataclasses import replace
from pathlib import Path

from atomicio import atomic_write_bytes
from ssl_train.config import TrainConfig

CONFIGS = Path(__file__).parent / "configs"
RESULTS = Path(__file__).parent / "results"


def list_experiments() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.json") if p.stem != "scales")


def load_experiment(name: str) -> dict:
    path = CONFIGS / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(list_experiments())}")
    return json.loads(path.read_text())


def resolve_data(data: str, cache: Path) -> str:
    """A folder with train/ and test/, or a .tar.gz holding one (unpacked once into `cache`)."""
    path = Path(data)
    if data.endswith((".tar.gz", ".tgz")):
        if not path.is_file():
            raise ValueError(f"--data {data}: no such archive")
        target = cache / path.name.split(".")[0]
        if not target.exists():
            tmp = target.with_name(target.name + ".partial")
            tmp.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
            tmp.rename(target)
        found = [p.parent for p in target.rglob("train") if (p.parent / "test").is_dir()]
        if not found:
            raise ValueError(f"--data {data}: the archive holds no folder with train/ and test/")
        return str(found[0])
    return data


def plan(name: str, data: str, scale: str, seeds: list[int], results: Path = RESULTS) -> list[TrainConfig]:
    experiment = load_experiment(name)
    scales = json.loads((CONFIGS / "scales.json").read_text())
    if scale not in scales:
        raise ValueError(f"--scale: {scale!r} is not one of {', '.join(scales)}")
    base = TrainConfig.from_dict({**scales[scale], "data": data})
    runs = experiment.get(f"{scale}_runs", experiment["runs"])
    configs = []
    for run in runs:
        overrides = {k: v for k, v in run.items() if k != "id"}
        for seed in seeds:
            cfg = replace(base, **overrides, seed=seed, out=str(results / name / f"{run['id']}-s{seed}"))
            cfg.validate()
            configs.append(cfg)
    return configs


def run_experiment(name: str, data: str, scale: str = "cpu", seeds: list[int] = (0,), results: Path = RESULTS,
                   dry_run: bool = False, log=print) -> list[dict]:
    from ssl_train.loop import RunError, train
    done = []
    for cfg in plan(name, data, scale, list(seeds), results):
        out = Path(cfg.out)
        if (out / "result.json").exists():
            log(f"skip {out} (finished)")
            continue
        resume = (out / "checkpoint.pt").exists()
        log(f"{'resume' if resume else 'run'} {out}: policy={cfg.policy} method={cfg.method} "
            f"negatives={cfg.negatives} batch={cfg.batch_size} lr_scaling={cfg.lr_scaling} loader={cfg.loader}")
        if dry_run:
            continue
        try:
            done.append(train(cfg, resume=resume, progress=False))
        except (RunError, ValueError, RuntimeError, OSError) as err:  # one failed run must not stop the others
            out.mkdir(parents=True, exist_ok=True)
            reason = " ".join(str(err).split()) or type(err).__name__
            atomic_write_bytes(out / "failed.txt", f"{type(err).__name__}: {reason}\n".encode())
            log(f"FAILED {out}: {reason}")
            continue
        (out / "failed.txt").unlink(missing_ok=True)  # an earlier failure of this run is history now
    return done
