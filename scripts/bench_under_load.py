"""The demo and the augmentation bench, quiet and beside busy processes (the load of a laptop with
a browser open, or of a shared machine): what the augmentation costs per image either way, and
whether the result stays the same.

    python scripts/bench_under_load.py --busy 2 --json benchmarks/under-load.json

Each case runs in a fresh process; the busy processes are plain Python loops started before the
case and stopped after it. Records carry the date, the CPU and the core count.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ["-m", "ssl_train", "--data", "digits", "--num-workers", "0", "--no-progress", "--overwrite"]
BENCH = ["-m", "augpipe.bench", "--sizes", "32", "--policies", "simclr", "--engines", "augpipe", "--repeats", "7"]


@contextmanager
def busy(count: int):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def demo(aug_threads: int, load: int, folder: Path) -> dict:
    out = folder / f"demo-{aug_threads}-{load}"
    with busy(load):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *DEMO, "--out", str(out), "--aug-threads", str(aug_threads)], cwd=ROOT,
                       check=True, capture_output=True)
        wall = time.perf_counter() - t0
    result = json.loads((out / "result.json").read_text())
    t = result["time"]
    return {"case": "demo", "aug_threads": result["aug_threads"], "cpu_threads": result["cpu_threads"],
            "busy_processes": load, "augment_s": t["augment_s"], "augment_ms_per_image": t["augment_ms_per_image"],
            "model_s": t["model_s"], "total_s": t["total_s"], "wall_s": wall, "knn_top1": result["knn_top1"],
            "losses": [row["loss"] for row in result["epochs"]]}


def bench(threads: int, load: int, folder: Path) -> dict:
    path = folder / f"bench-{threads}-{load}.json"
    with busy(load):
        subprocess.run([sys.executable, *BENCH, "--json", str(path)], cwd=ROOT, check=True, capture_output=True,
                       env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    record = next(r for r in json.loads(path.read_text()) if r["engine"] == "augpipe")
    return {"case": "augpipe.bench simclr 32 px", "threads": threads, "busy_processes": load,
            **{k: v for k, v in record.items() if k not in ("engine", "policy")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside each loaded case")
    parser.add_argument("--aug-threads", default="1,0", help="the demo's --aug-threads values (0: as the model)")
    parser.add_argument("--bench-threads", default="1,2", help="OMP_NUM_THREADS values of the bench")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in (int(v) for v in args.aug_threads.split(",")):
            for load in (0, args.busy):
                records.append(demo(k, load, Path(tmp)))
                print(json.dumps(records[-1]), flush=True)
        for k in (int(v) for v in args.bench_threads.split(",")):
            for load in (0, args.busy):
                records.append(bench(k, load, Path(tmp)))
                print(json.dumps(records[-1]), flush=True)
    data = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "cores": os.cpu_count(), "records": records}
    Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
