"""Expand a named experiment into training runs and run the ones not finished yet.

An experiment is `configs/NAME.json`: a claim and a list of runs, each a few `TrainConfig`
overrides on top of the scale's base (`configs/scales.json`: `smoke` reproduces a trend in
minutes, `cpu` is the 2-core scale of the published results, `gpu` is ready to run on one GPU).
A scale also gives its default `seeds` and may give `caps`: budgets a run's overrides may not
exceed at that scale (`train_subset`, `epochs`, `steps`). A run may ask for `steps` (optimiser
steps) instead of epochs: the epochs are then the nearest whole number giving that many steps
on the scale's training subset (equal-steps comparisons across batch sizes).
Run folders are `RESULTS/NAME/RUN-sSEED`; a run with a result.json is skipped, one with a
checkpoint is resumed, so an interrupted experiment continues where it stopped; a run whose exact
config (and seed) already finished elsewhere under RESULTS reuses that result (`reused_from`).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from _augpipe_shared.atomicio import atomic_write_bytes, write_json
from loaders.sources.datasets import ARCHIVES, resolve_source, splits
from ssl_train.config import TrainConfig

CONFIGS = Path(__file__).parent / "configs"
RESULTS = Path(__file__).parent / "results"  # the published snapshot (report's default)
FRESH = Path("runs") / "experiments"           # new runs go to FRESH/<UTC time> unless --results says


def fresh_results() -> Path:
    """A new results folder for this invocation (the published snapshot is never trained into by default)."""
    import datetime
    return FRESH / datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")


def list_experiments() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.json") if p.stem != "scales")


def load_experiment(name: str) -> dict:
    path = CONFIGS / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(list_experiments())}")
    return json.loads(path.read_text())


def resolve_data(data: str) -> str:
    """A folder with train/ and test/, or an archive holding one (unpacked once into the cache by
    `loaders.sources.datasets`, the one resolver): the folder, so that runs name their data by it."""
    if not data.endswith(ARCHIVES):
        splits(data)  # a name or a folder with train/ and test/, else one line naming --data
        return data
    try:
        target = resolve_source(f"{data}:train").parent
    except FileNotFoundError:
        raise ValueError(f"--data {data}: no such archive") from None
    except ValueError as err:
        raise ValueError(f"--data {data}: the archive holds no folder with train/ and test/ ({err})") from None
    return str(target)


def load_scales() -> dict:
    return json.loads((CONFIGS / "scales.json").read_text())


def _scale(scale: str) -> dict:
    scales = load_scales()
    if scale not in scales:
        raise ValueError(f"--scale: {scale!r} is not one of {', '.join(scales)}")
    return scales[scale]


def _budget(run: dict, base: TrainConfig, caps: dict, name: str) -> dict:
    """The run's overrides with the scale's caps applied and `steps` turned into epochs."""
    overrides = {k: v for k, v in run.items() if k not in ("id", "steps")}
    for key in ("train_subset", "epochs"):
        if key in caps and key in overrides:
            overrides[key] = min(overrides[key], caps[key])
    if "steps" in run:
        steps = min(run["steps"], caps.get("steps", run["steps"]))
        subset = overrides.get("train_subset", base.train_subset)
        batch = overrides.get("batch_size", base.batch_size)
        if not subset or subset < batch:
            raise ValueError(f"{name}/{run['id']}: 'steps' needs a train_subset of at least the batch size "
                             f"at this scale (got train_subset={subset}, batch_size={batch})")
        overrides["epochs"] = max(1, round(steps / (subset // batch)))
    return overrides


def scale_runs(experiment: dict, scale: str) -> list[dict]:
    """The runs a scale trains: `SCALE_runs` replaces the list (e.g. `gpu_runs`), `SCALE_ids` picks
    from it (e.g. `smoke_ids`: the few runs that show the claim's trend in minutes)."""
    runs = experiment.get(f"{scale}_runs", experiment["runs"])
    ids = experiment.get(f"{scale}_ids")
    if ids is None:
        return runs
    picked, unknown = _select(runs, ids)
    if unknown:
        raise ValueError(f"{scale}_ids names runs that do not exist: {', '.join(unknown)}")
    return picked


def _select(runs: list[dict], ids: list[str]) -> tuple[list[dict], list[str]]:
    """The runs whose id is in `ids` (in the experiment's order), and the ids that name no run."""
    return [run for run in runs if run["id"] in ids], sorted(set(ids) - {run["id"] for run in runs})


def plan(name: str, data: str, scale: str, seeds: list[int] | None = None, results: Path = RESULTS,
         only: list[str] | None = None) -> list[TrainConfig]:
    """The configs of an experiment at a scale: its runs (or the ids in `only`) times the seeds."""
    experiment = load_experiment(name)
    settings = dict(_scale(scale))
    default_seeds, caps = settings.pop("seeds", [0]), settings.pop("caps", {})
    base = TrainConfig.from_dict({**settings, "data": data})
    runs = scale_runs(experiment, scale)
    if only is not None:
        picked, unknown = _select(runs, only)
        if unknown:
            raise ValueError(f"--runs: {', '.join(unknown)} not a run of {name} at scale {scale}; "
                             f"valid: {', '.join(run['id'] for run in runs)}")
        runs = picked
    configs = []
    for run in runs:
        overrides = _budget(run, base, caps, name)
        for seed in default_seeds if seeds is None else seeds:
            cfg = replace(base, **overrides, seed=seed, out=str(results / name / f"{run['id']}-s{seed}"))
            cfg.validate()
            configs.append(cfg)
    return configs


def _comparable(config: dict) -> dict:
    """A run's settings as two runs are compared: missing ones (an older result.json) take their
    defaults, the folder is left out, and the data is named by its folder (the unpacked cache may
    sit elsewhere on another machine); JSON round trip so that tuples and lists compare alike."""
    settings = TrainConfig.from_dict(config).to_dict()
    settings.pop("out")
    if not isinstance(settings["data"], str):  # a hand-edited result.json: `"data": null`
        raise ValueError(f"its config's data is {settings['data']!r}, not a path or a dataset name")
    settings["data"] = Path(settings["data"]).name
    return json.loads(json.dumps(settings))


def finished_twin(cfg: TrainConfig, results: Path, code: str | None = None) -> Path | None:
    """A finished run elsewhere under `results` with exactly this config (all but its folder).

    The same config and seed reproduce bit for bit with the same code (`negatives/all` and
    `policies/simclr-cifar` are one run), so its result stands for this one instead of training it
    again. A twin made by other code (`versions.code` differs from `code`) is not one: code changes
    move results (a supervised run retrained after a sampler refactor: kNN 0.5483 vs 0.5472).
    Results written before the digest was recorded carry none and are taken as they are."""
    want = _comparable(cfg.to_dict())
    for path in sorted(results.glob("*/*/result.json")):
        if path.parent.resolve() == Path(cfg.out).resolve():
            continue
        try:
            result = json.loads(path.read_text())
            have, their_code = result.get("config"), (result.get("versions") or {}).get("code")
        except (OSError, ValueError, AttributeError):
            continue
        if code is not None and their_code is not None and their_code != code:
            continue
        try:
            if isinstance(have, dict) and _comparable(have) == want:
                return path.parent
        except (ValueError, TypeError):  # not a config this runner can compare: not a twin
            continue
    return None


def stale_keys(cfg: TrainConfig, out: Path) -> list[str]:
    """The settings in which the finished run in `out` differs from `cfg` (empty: it is this run).

    A result kept under a run id whose config has changed since (another preset, lr rule...) would
    otherwise be skipped as finished and reported as the new config."""
    try:
        old = _comparable(json.loads((out / "result.json").read_text()).get("config") or {})
    except (ValueError, AttributeError, TypeError) as err:
        raise ValueError(f"{out / 'result.json'}: not a result this runner wrote ({err})") from None
    new = _comparable(cfg.to_dict())
    return [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if old[k] != new[k]]


def _reuse(twin: Path, out: Path) -> None:
    """Copy a twin's result (and its log) into `out`, naming where it came from."""
    result = json.loads((twin / "result.json").read_text())
    result["config"]["out"], result["reused_from"] = str(out), str(twin)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "log.csv"):
        if (twin / name).exists():
            atomic_write_bytes(out / name, (twin / name).read_bytes())
    write_json(result, out / "result.json")  # last: marks it finished


def run_experiment(name: str, data: str, scale: str = "cpu", seeds: list[int] | None = None, results: Path = RESULTS,
                   dry_run: bool = False, log=print, only: list[str] | None = None) -> list[dict]:
    from ssl_train.loop import Preempted, RunError, train
    from ssl_train.provenance import code_digest
    done, code = [], code_digest()
    configs = plan(name, data, scale, None if seeds is None else list(seeds), results, only)
    stale = []  # checked before anything trains: a finished result is never overwritten nor mislabelled
    for cfg in configs:
        if (Path(cfg.out) / "result.json").exists() and (keys := stale_keys(cfg, Path(cfg.out))):
            stale.append(f"{cfg.out} ({'; '.join(keys)})")
    if stale:
        raise ValueError(f"{len(stale)} finished run(s) of {name} have another config than the experiment now asks "
                         f"for: {', '.join(stale)}; move them aside or pass a fresh --results")
    for cfg in configs:
        out = Path(cfg.out)
        if (out / "result.json").exists():
            log(f"skip {out} (finished)")
            continue
        twin = None if dry_run else finished_twin(cfg, results, code)
        if twin is not None:
            _reuse(twin, out)
            log(f"reuse {twin} for {out} (the same config and seed)")
            continue
        resume = (out / "checkpoint.pt").exists()
        log(f"{'resume' if resume else 'run'} {out}: policy={cfg.policy} method={cfg.method} "
            f"negatives={cfg.negatives} batch={cfg.batch_size} lr={cfg.lr} ({cfg.lr_scaling}) epochs={cfg.epochs} "
            f"loader={cfg.loader}")
        if dry_run:
            continue
        try:
            done.append(train(cfg, resume=resume, progress=False))
        except Preempted:  # a stop signal stops the experiment (its run checkpointed), not just this run
            raise
        except (RunError, ValueError, RuntimeError, OSError) as err:  # one failed run must not stop the others
            out.mkdir(parents=True, exist_ok=True)
            reason = " ".join(str(err).split()) or type(err).__name__
            atomic_write_bytes(out / "failed.txt", f"{type(err).__name__}: {reason}\n".encode())
            log(f"FAILED {out}: {reason}")
            continue
        (out / "failed.txt").unlink(missing_ok=True)  # an earlier failure of this run is history now
    return done
