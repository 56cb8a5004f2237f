"""`python -m experiments run NAME --data PATH [--scale smoke|cpu|gpu] [--seeds 0,1,2] [--runs ID,..] [--results DIR]`,
`... report [--results DIR]` and `... list`.

`run` trains into a fresh folder (`runs/experiments/<UTC time>`) unless `--results DIR` names one
(pass the same DIR again to resume or extend it); `report` reads the published snapshot
(`experiments/results`) unless `--results DIR` names another.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from _augpipe_shared.atomicio import nearest_existing
from _augpipe_shared.cli import ArgumentParser
from _augpipe_shared.plugins import add_plugin_flag, load_plugins
from experiments.runner import RESULTS, fresh_results, list_experiments, load_scales, resolve_data, run_experiment
from ssl_train.preempt import Preempted


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m experiments")
    add_plugin_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a named experiment (finished runs are skipped)")
    run.add_argument("name", help=f"one of: {', '.join(list_experiments())}")
    run.add_argument("--data", required=True,
                     help="what ssl_train's --data takes: a dataset name (cifar10, ...), an archive (.tar, "
                          ".tar.gz, .tgz, .zip) of a dataset, or a folder with train/ and test/, e.g. CIFAR-10 as "
                          "JPEGs: cifar10/{train,test}/<class>/*.jpg")
    run.add_argument("--scale", default="cpu", choices=list(load_scales()),
                     help="smoke: a few runs that show the trend in minutes (policies: 6 min on 2 cores); cpu: the published scale; gpu: one GPU")
    run.add_argument("--seeds", default=None, help="comma-separated seeds (default: the scale's, e.g. 0,1,2 for cpu)")
    run.add_argument("--results", type=Path, default=None,
                     help="results folder (default: a fresh runs/experiments/<UTC time>; the same DIR resumes)")
    run.add_argument("--runs", default=None,
                     help="comma-separated run ids to train (default: every run of the scale), e.g. the lr "
                          "picked on seed 0 for further seeds")
    run.add_argument("--dry-run", action="store_true", help="list the runs without training")
    rep = sub.add_parser("report", help="tables (REPORT.md) and plots from every result.json")
    rep.add_argument("--results", type=Path, default=RESULTS,
                     help="the results to report (default: the published snapshot)")
    rep.add_argument("--out", type=Path, default=None,
                     help="where REPORT.md and the plots go (default: the results folder; for the snapshot "
                          "installed with the package, ./experiments-report)")
    sub.add_parser("list", help="the experiments and their claims")
    return parser


def _not_a_folder(path: Path) -> str | None:
    """Why `path` cannot be (or become) a folder: it, or a folder above it, is a file."""
    place = nearest_existing(path)
    if place.exists() and not place.is_dir():
        return "is a file" if place == path else f"{place} is a file"
    return None


def main(argv: list[str] | None = None) -> int:
    load_plugins(argv, "python -m experiments")  # ops, methods, backends an experiment may name
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "list":
        from experiments.runner import load_experiment
        for name in list_experiments():
            print(f"{name}: {load_experiment(name)['claim']}")
        return 0
    if args.command == "report":
        from experiments.report import report
        try:
            path, pngs = report(args.results, args.out)
        except (ValueError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"wrote {path}" + "".join(f", {p.name}" for p in pngs))
        return 0
    seeds = None
    if args.seeds is not None:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            seeds = []
        if not seeds or min(seeds) < 0:
            parser.error(f"--seeds: expected comma-separated integers >= 0, got {args.seeds!r}")
    problem = _not_a_folder(args.results) if args.results is not None else None
    if problem:
        parser.error(f"--results {args.results}: {problem}; --results names a folder")
    results = args.results or fresh_results()
    try:
        data = resolve_data(args.data)
        print(f"results: {results} (report: python -m experiments report --results {results})", flush=True)
        only = None if args.runs is None else [r.strip() for r in args.runs.split(",") if r.strip()]
        run_experiment(args.name, data, args.scale, seeds, results, args.dry_run,
                       log=lambda s: print(s, flush=True), only=only)
    except Preempted as stop:  # a stop signal: the run in progress checkpointed its step
        again = list(sys.argv[1:] if argv is None else argv)
        if args.results is None:
            again += ["--results", str(results)]
        print(stop.with_resume(f"python -m experiments {shlex.join(again)}"), file=sys.stderr)
        return stop.exit_code
    except (ValueError, OSError) as err:  # bad input, or a user path that cannot be used
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
