"""Probe the five CLIs with bad input, as a new user would type it: `make probe`.

Each case runs one command in a fresh process, in a scratch folder of fixtures (a plain file, a
folder that is not a run, damaged archives and checkpoints, a crafted pickle that would run code).
A case expects either `error` (exit status != 0, no traceback, the last line of stderr an error
that names what was wrong) or `ok` (exit 0, and when given, a line on stdout that says what
happened). Afterwards: were the fixtures left as they were (no data lost), and did the crafted
pickle run (code execution)? Exit status 1 when any case is not as expected.

    python scripts/probe_bad_input.py [--jobs N] [CASE ...]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "digits", "--image-size", "16", "--batch-size", "64", "--proj-hidden", "64", "--proj-dim", "32",
        "--num-workers", "0", "--no-progress", "--epochs", "1", "--test-subset", "100", "--train-subset", "200"]


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]   # after `python -m`; {w} is the scratch folder
    expect: str = "error"   # or "ok"
    says: str = ""          # a substring of the error line (error) or of stdout (ok)


def _train(name, *args, expect="error", says=""):
    return Case(name, ("ssl_train", *TINY, "--out", f"{{w}}/out-{name}", *args), expect, says)


def _train_into(name, out, *args, says=""):
    return Case(name, ("ssl_train", *TINY, "--out", out, *args), "error", says)


CASES = [
    # ssl_train: flags outside their domain
    _train("lr-nan", "--lr", "nan", says="--lr: must be a finite number"),
    _train("lr-negative", "--lr", "-1", says="--lr: must be > 0"),
    _train("lr-text", "--lr", "abc", says="invalid float value"),
    _train("batch-0", "--batch-size", "0", says="--batch-size: must be >= 1"),
    _train("epochs-0", "--epochs", "0", says="--epochs: must be >= 1"),
    _train("image-size-huge", "--image-size", "100000", says="--image-size: must be in"),
    _train("temperature-0", "--temperature", "0", says="--temperature: must be > 0"),
    _train("negatives-0", "--negatives", "0", says="--negatives: expected 'all' or a positive integer"),
    _train("negatives-too-many", "--negatives", "100000", says="only 126 candidates per anchor"),
    _train("ema-2", "--method", "byol", "--ema", "2", says="--ema: must be in [0, 1)"),
    _train("momentum-2", "--momentum", "2", says="--momentum: must be in [0, 1)"),
    _train("barlow-negative", "--method", "barlow", "--barlow-lambda", "-1", says="--barlow-lambda: must be >= 0"),
    _train("workers-negative", "--num-workers", "-1", says="--num-workers: must be >= 0"),
    _train("seed-huge", "--seed", str(2**70), says="--seed: must be an integer in [0, 2**32)"),
    _train("subset-negative", "--train-subset", "-5", says="--train-subset: must be >= 0"),
    _train("proj-layers-0", "--proj-layers", "0", says="--proj-layers: must be >= 1"),
    _train("views-1", "--views", "1", says="needs >= 2"),
    _train("views-garbage", "--views", "2xx", says="cannot parse '2xx'"),
    _train("views-inverted", "--views", "2x16@0.9:0.1", says="crop scale must satisfy"),
    _train("views-size-0", "--views", "2x0", says="count and size must be >= 1"),
    _train("policy-unknown", "--policy", "nosuch", says="unknown policy or op 'nosuch'"),
    _train("policy-nan", "--policy", "crop+jitter(nan,0,0,0)", says="brightness must be finite"),
    _train("policy-inf", "--policy", "noise(std=inf)", says="std must be finite"),
    _train("policy-syntax", "--policy", "crop+jitter(0.4", says="cannot parse op"),
    _train("policy-p", "--policy", "flip(p=1.5)", says="p must be in [0, 1]"),
    _train("policy-twice", "--policy", "flip(0.5,p=0.2)", says="argument 'p' given twice"),
    _train("policy-override", "--policy", "simclr[nosuch.x=1]", says="has no op 'nosuch'"),
    _train("resume-and-overwrite", "--resume", "--overwrite", says="pass one of them"),
    _train("device-cuda", "--device", "cuda", says="CUDA is not available"),
    _train("engine-cannot", "--aug-engine", "torchvision", "--policy", "noise(std=0.1:0.2)",
           says="torchvision: noise with a std range"),
    # ssl_train: data and places
    _train("data-missing", "--data", "{w}/nothing", says="--data {w}/nothing: expected"),
    _train("data-file", "--data", "{w}/file", says="--data {w}/file: expected"),
    _train("data-unknown-name", "--data", "cifar11", says="--data cifar11: expected"),
    _train("data-damaged-tgz", "--data", "{w}/damaged.tar.gz", says="damaged.tar.gz: cannot unpack it"),
    _train("data-damaged-zip", "--data", "{w}/damaged.zip", says="damaged.zip: cannot unpack it"),
    _train_into("out-is-file", "{w}/file", says="is a file; --out names a folder"),
    _train_into("out-under-file", "{w}/file/run", says="cannot create its folder"),
    _train_into("overwrite-not-a-run", "{w}/notes", "--overwrite", says="--overwrite replaces runs only"),
    _train_into("resume-damaged", "{w}/damaged-run", "--resume", says="not a loadable checkpoint"),
    _train_into("resume-pickle", "{w}/pickle-run", "--resume", says="not a loadable checkpoint"),
    _train("plugin-missing", "--plugin", "no_such_module_xyz", says="--plugin no_such_module_xyz: cannot import"),
    # ssl_train: accepted, and said so
    _train("subset-larger-than-data", "--train-subset", "99999", expect="ok",
           says="note: --train-subset 99999 is more than the 1442 images"),
    _train("resume-nothing-yet", "--resume", expect="ok", says="--resume: no checkpoint in"),
    # linear_eval
    Case("eval-no-run", ("ssl_train.linear_eval", "--run", "{w}/nothing"), says="no checkpoint"),
    Case("eval-damaged", ("ssl_train.linear_eval", "--run", "{w}/damaged-run"), says="not a loadable checkpoint"),
    Case("eval-pickle", ("ssl_train.linear_eval", "--run", "{w}/pickle-run"), says="not a loadable checkpoint"),
    Case("eval-epochs-0", ("ssl_train.linear_eval", "--run", "{w}/damaged-run", "--epochs", "0"),
         says="--epochs: must be >= 1"),
    Case("eval-lr-nan", ("ssl_train.linear_eval", "--run", "{w}/damaged-run", "--lr", "nan"),
         says="--lr: must be a finite number > 0"),
    # loaders.prepare
    Case("prepare-missing", ("loaders.prepare", "{w}/nothing", "{w}/x.beton"), says="no such directory"),
    Case("prepare-empty", ("loaders.prepare", "{w}/empty", "{w}/x.beton"), says="no image files"),
    Case("prepare-damaged", ("loaders.prepare", "{w}/damaged.tar.gz", "{w}/x.beton"), says="cannot unpack it"),
    Case("prepare-bad-split", ("loaders.prepare", "digits:valid", "{w}/x.beton"), says="split must be train or test"),
    Case("prepare-not-beton", ("loaders.prepare", "digits:test", "{w}/x.txt"), says="expected a file name ending"),
    Case("prepare-under-file", ("loaders.prepare", "digits:test", "{w}/file/x.beton"), says="is a file, so no folder"),
    Case("prepare-overwrite-foreign", ("loaders.prepare", "digits:test", "{w}/notes", "--format", "wds", "--overwrite"),
         says="was not written by loaders.prepare"),
    Case("prepare-shard-size-0", ("loaders.prepare", "digits:test", "{w}/s", "--format", "wds", "--shard-size", "0"),
         says="--shard-size must be >= 1"),
    Case("prepare-workers-0", ("loaders.prepare", "digits:test", "{w}/x.beton", "--workers", "0"),
         says="--workers must be >= 1"),
    # experiments
    Case("run-unknown", ("experiments", "run", "nosuch", "--data", "digits"), says="unknown experiment 'nosuch'"),
    Case("run-data-missing", ("experiments", "run", "policies", "--data", "{w}/nothing", "--dry-run"),
         says="--data {w}/nothing: expected"),
    Case("run-seeds-empty", ("experiments", "run", "policies", "--data", "digits", "--seeds", "", "--dry-run"),
         says="--seeds: expected comma-separated integers"),
    Case("run-seeds-text", ("experiments", "run", "policies", "--data", "digits", "--seeds", "a,b", "--dry-run"),
         says="--seeds: expected comma-separated integers"),
    Case("run-unknown-id", ("experiments", "run", "policies", "--data", "digits", "--runs", "zzz", "--dry-run"),
         says="--runs: zzz not a run of policies"),
    Case("run-results-file", ("experiments", "run", "policies", "--data", "digits", "--results", "{w}/file",
                              "--dry-run"), says="is a file; --results names a folder"),
    Case("report-missing", ("experiments", "report", "--results", "{w}/nothing"), says="does not exist"),
    Case("report-file", ("experiments", "report", "--results", "{w}/file"), says="is not a folder"),
    Case("plugin-missing-experiments", ("experiments", "--plugin", "nosuchmod", "list"), says="cannot import it"),
]


class _RunsCode:
    """A pickle that would run a shell command when loaded: checkpoints must never be unpickled freely."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def make_fixtures(w: Path) -> dict[Path, bytes]:
    """The scratch folder's fixtures; returns what each file holds, to check nothing was lost."""
    (w / "file").write_text("a plain file\n")
    (w / "empty").mkdir()
    (w / "notes").mkdir()
    (w / "notes" / "notes.txt").write_text("my notes, not a run\n")
    (w / "damaged.tar.gz").write_bytes(b"not a gzip stream")
    (w / "damaged.zip").write_bytes(b"PK not a zip")
    (w / "damaged-run").mkdir()
    (w / "damaged-run" / "checkpoint.pt").write_bytes(b"garbage")
    (w / "pickle-run").mkdir()
    (w / "pickle-run" / "checkpoint.pt").write_bytes(pickle.dumps({"model": _RunsCode(w / "PWNED")}))
    return {p: p.read_bytes() for p in w.rglob("*") if p.is_file()}


def run_case(case: Case, w: Path, cache: Path) -> tuple[Case, bool, str]:
    args = [a.replace("{w}", str(w)) for a in case.args]
    says = case.says.replace("{w}", str(w))
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "AUGPIPE_CACHE": str(cache), "OMP_NUM_THREADS": "1"})
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    last = err_lines[-1] if err_lines else ""
    if case.expect == "ok":
        good = proc.returncode == 0 and says in proc.stdout
        return case, good, f"exit {proc.returncode}; " + (says if good else (last or proc.stdout[-200:]))
    good = (proc.returncode != 0 and "Traceback" not in proc.stderr and "error" in last and says in last)
    return case, good, f"exit {proc.returncode}; {last[:300]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help="run only these cases (default: all)")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 1)), help="cases run at once")
    args = parser.parse_args(argv)
    known = {c.name for c in CASES}
    unknown = sorted(set(args.cases) - known)
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    chosen = [c for c in CASES if not args.cases or c.name in args.cases]
    with tempfile.TemporaryDirectory(prefix="augpipe-probe-") as scratch:
        w, cache = Path(scratch) / "w", Path(scratch) / "cache"
        w.mkdir()
        before = make_fixtures(w)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda c: run_case(c, w, cache), chosen))
        lost = [str(p.relative_to(w)) for p, data in before.items() if not p.is_file() or p.read_bytes() != data]
        executed = (w / "PWNED").exists()
    for case, good, detail in results:
        print(f"{'clean' if good else 'WRONG'}  {case.name:28s} {detail}")
    clean = sum(good for _, good, _ in results)
    print(f"{clean} of {len(results)} cases clean; data lost: {len(lost)}{' (' + ', '.join(lost) + ')' if lost else ''}; "
          f"code executed: {int(executed)}")
    return 0 if clean == len(results) and not lost and not executed else 1


if __name__ == "__main__":
    sys.exit(main())
