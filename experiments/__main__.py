"""`python -m experiments run NAME --data PATH [--scale cpu|gpu] [--seeds 0,1]` and `... report`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.runner import RESULTS, list_experiments, resolve_data, run_experiment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a named experiment (finished runs are skipped)")
    run.add_argument("name", help=f"one of: {', '.join(list_experiments())}")
    run.add_argument("--data", required=True,
                     help="folder with train/ and test/ ImageFolders, or a .tar.gz holding one (e.g. "
                          "../shared/data/cifar10-jpeg.tar.gz)")
    run.add_argument("--scale", default="cpu", choices=["cpu", "gpu"])
    run.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    run.add_argument("--results", type=Path, default=RESULTS)
    run.add_argument("--dry-run", action="store_true", help="list the runs without training")
    rep = sub.add_parser("report", help="tables (REPORT.md) and plots from every result.json")
    rep.add_argument("--results", type=Path, default=RESULTS)
    sub.add_parser("list", help="the experiments and their claims")
    args = parser.parse_args(argv)

    if args.command == "list":
        from experiments.runner import load_experiment
        for name in list_experiments():
            print(f"{name}: {load_experiment(name)['claim']}")
        return 0
    if args.command == "report":
        from experiments.report import report
        path, pngs = report(args.results)
        print(f"wrote {path}" + "".join(f", {p.name}" for p in pngs))
        return 0
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    from loaders.datasets import cache_dir
    try:
        data = resolve_data(args.data, cache_dir() / "experiments-data")
        run_experiment(args.name, data, args.scale, seeds, args.results, args.dry_run,
                       log=lambda s: print(s, flush=True))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
