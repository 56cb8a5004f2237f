"""`python -m augpipe.bench`: images/s of each policy on each engine, side by side.

Engines: `augpipe` (ours, with its device default: subset gating eager on the CPU, blend gating
compiled on CUDA), `augpipe-compiled` (torch.compile of the blend path), `kornia` (stock
AugmentationSequential of the same chain), `kornia-compiled` (that chain under torch.compile),
`torchvision` (the v2 chain applied image by image, as in a DataLoader worker), `dali` (DALI's own
operators; CPU here, GPU where CUDA exists). Inputs are generated uint8 batches of the output size
(what a loader hands over); throughput counts input images per second, each producing all the
views. Every number is the median of `--repeats` timed calls after `--warmup` calls; the first call
(which includes compilation for the compiled engines) is reported apart as `first_call_s`.
augpipe records also carry `syncs_per_call` and `ops_per_call` (`augpipe.diagnostics`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch

from _augpipe_shared import machine
from _augpipe_shared.atomicio import atomic_write_bytes
from _augpipe_shared.cli import ArgumentParser
from _augpipe_shared.plugins import add_plugin_flag, load_plugins
from _augpipe_shared.timing import SyncTimer
from augpipe.cpu import tune_cpu_allocator
from augpipe.diagnostics import count_ops
from augpipe.interop.engines import ENGINES, Unsupported, build
from augpipe.spec import build_policy, list_policies, split_top

DEFAULT_POLICIES = ("simclr", "simclr[rrc.antialias=true]", "byol", "noise", "crop", "none")
DEFAULT_ENGINES = ("augpipe", "kornia", "kornia-compiled", "torchvision", "dali", "torchaug")  # missing: skipped
DEFAULT_BATCH = {32: 256, 64: 256, 96: 128, 128: 128, 224: 64}


def first_call(run, images: torch.Tensor) -> float:
    """Seconds of the first call (compilation included for compiled engines)."""
    timer = SyncTimer(images.device)
    with timer:
        run(images)
    return timer.seconds


def measure(run, images: torch.Tensor, warmup: int, repeats: int) -> float:
    """Median images/s over `repeats` timed calls."""
    for _ in range(warmup):
        run(images)
    rates = []
    for _ in range(repeats):
        timer = SyncTimer(images.device)
        with timer:
            run(images)
        rates.append(images.shape[0] / timer.seconds)
    return statistics.median(rates)


def allow_recompiles(limit: int = 64) -> None:
    """Each policy x size is a new graph for the compiled engines, and some of Kornia's own
    functions (compiled after graph breaks) are shared by all of them: past torch's default of
    8 graphs per function, dynamo silently runs them eager, and the 'compiled' rows would not be."""
    import torch._dynamo
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), limit))


def run_bench(policies, engines, sizes, device, views=2, warmup=2, repeats=5, batch=None, seed=0,
              log=print) -> list[dict]:
    if any(e.endswith("-compiled") for e in engines):
        allow_recompiles()
    records = []
    common = {"machine": machine.describe(device), "versions": machine.versions("torchvision", "kornia", "nvidia.dali")}
    for size in sizes:
        n = batch or DEFAULT_BATCH.get(size, 64)
        g = torch.Generator(device=device).manual_seed(seed)
        images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device, generator=g)
        for policy_name in policies:
            policy = build_policy(policy_name, size=size, views=views)
            for engine in engines:
                try:
                    record = bench_one(engine, policy, images, g, warmup, repeats)
                except (Unsupported, ImportError) as err:
                    log(f"  skip {engine:<16} {policy_name:<8} {size:>3}px: {err}")
                    continue
                records.append({**record, "policy": policy_name, "views": views, **common})
                extra = (f" ({record['syncs_per_call']} syncs, {record['ops_per_call']} ops per call, "
                         f"{record['gating']})" if "gating" in record else "")
                log(f"  {engine:<16} {policy_name:<8} {size:>3}px batch {n:>3}: {record['images_per_s']:9.1f} img/s, "
                    f"first call {record['first_call_s']:.2f}s{extra}")
    return records


def bench_one(engine: str, policy, images: torch.Tensor, g: torch.Generator, warmup: int, repeats: int) -> dict:
    """One engine's record for one policy and batch: throughput, first call, and for augpipe's own
    engines the host syncs and ops per call and the gating used."""
    device, n = images.device, images.shape[0]
    runner = build(engine, policy, **({"device": str(device), "batch_size": n} if engine == "dali" else {}))
    run = lambda x: runner(x, generator=g)
    first_s = first_call(run, images)
    rate = measure(run, images, warmup, repeats)
    record = {"engine": engine, "size": images.shape[-1], "batch": n, "device": str(device),
              "images_per_s": round(rate, 1), "first_call_s": round(first_s, 3)}
    if runner.native:
        counts = count_ops(lambda: run(images))
        record.update(syncs_per_call=counts.sync_count, ops_per_call=counts.ops,
                      gating=runner.policy.gating_for(device), compiled=runner.policy.options.compiles_on(device))
    return record


TARGET_TASKS = ("detection", "segmentation")


def _target_pipelines(task: str, size: int):
    """The task's torchvision pipeline (the drop-in converts it) and Kornia's own equivalent."""
    import kornia.augmentation as K
    from torchvision.transforms import v2
    crop = [v2.RandomResizedCrop(size, scale=(0.3, 1.0), antialias=False), v2.RandomHorizontalFlip()]
    kcrop = [K.RandomResizedCrop((size, size), scale=(0.3, 1.0)), K.RandomHorizontalFlip()]
    if task == "segmentation":
        crop.append(v2.RandomAffine(15))
        kcrop.append(K.RandomAffine(15))
    jitter = v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)
    pipeline = v2.Compose([*crop, jitter, v2.ToDtype(torch.float32, scale=True)])
    keys = ["input", "bbox_xyxy"] if task == "detection" else ["input", "mask"]
    return pipeline, K.AugmentationSequential(*kcrop, K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), data_keys=keys)


def _target_runs(task: str, images: torch.Tensor, g: torch.Generator) -> dict:
    """engine -> a function of the images that also moves the task's targets (8 boxes per image,
    or a label mask), for augpipe's drop-in, torchvision per image and Kornia with `data_keys`."""
    from torchvision import tv_tensors

    from augpipe.interop import from_torchvision
    n, _, side, _ = images.shape
    pipeline, kornia_chain = _target_pipelines(task, images.shape[-1])
    xy = torch.rand(n, 8, 2, generator=g, device=images.device) * side * 0.7
    boxes = torch.cat([xy, xy + side * 0.25], dim=-1)
    masks = (images[:, 0] // 64).long()  # 4 labels
    policy = from_torchvision(pipeline)
    targets = {"boxes": boxes} if task == "detection" else {"masks": masks}
    per_image = (lambda i: (tv_tensors.BoundingBoxes(boxes[i], format="XYXY", canvas_size=(side, side)),)) \
        if task == "detection" else (lambda i: (tv_tensors.Mask(masks[i]),))
    kornia_target = boxes if task == "detection" else masks[:, None].float()
    return {"augpipe": lambda x: policy(x, generator=g, **targets),
            "torchvision": lambda x: [pipeline(tv_tensors.Image(x[i]), *per_image(i)) for i in range(n)],
            "kornia": lambda x: kornia_chain(x.float() / 255, kornia_target)}


def run_targets_bench(sizes, device, warmup=2, repeats=5, batch=None, seed=0, log=print) -> list[dict]:
    """Images with their boxes (detection) or masks (segmentation), one view, per engine."""
    records = []
    common = {"machine": machine.describe(device), "versions": machine.versions("torchvision", "kornia")}
    for size in sizes:
        n = batch or DEFAULT_BATCH.get(size, 64)
        g = torch.Generator(device=device).manual_seed(seed)
        images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device, generator=g)
        for task in TARGET_TASKS:
            for engine, run in _target_runs(task, images, g).items():
                first_s = first_call(run, images)
                rate = measure(run, images, warmup, repeats)
                records.append({"engine": engine, "size": size, "batch": n, "device": str(device), "views": 1,
                                "policy": f"{task} (+{'boxes' if task == 'detection' else 'masks'})",
                                "images_per_s": round(rate, 1), "first_call_s": round(first_s, 3), **common})
                log(f"  {engine:<16} {task:<12} {size:>3}px batch {n:>3}: {rate:9.1f} img/s")
    return records


def table(records: list[dict]) -> str:
    """Markdown table: one row per (size, policy), one column per engine, ratio to augpipe."""
    engines = [e for e in ENGINES if any(r["engine"] == e for r in records)]
    rows = {}
    for r in records:
        rows.setdefault((r["size"], r["batch"], r["policy"]), {})[r["engine"]] = r["images_per_s"]
    head = "| size | batch | policy | " + " | ".join(f"{e} img/s" for e in engines) + " |"
    lines = [head, "|" + "---|" * (3 + len(engines))]
    for (size, n, policy), rates in rows.items():
        ours = rates.get("augpipe")
        cells = []
        for e in engines:
            if e not in rates:
                cells.append("n/a")
            elif e == "augpipe" or not ours:
                cells.append(f"{rates[e]:,.0f}")
            else:
                cells.append(f"{rates[e]:,.0f} (augpipe {ours / rates[e]:.1f}x)")
        lines.append(f"| {size} | {n} | {policy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(records: list[dict], path: str) -> None:
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["size"] for r in records})
    engines = [e for e in ENGINES if any(r["engine"] == e for r in records)]
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        policies = list(dict.fromkeys(r["policy"] for r in records if r["size"] == size))
        width = 0.8 / max(len(engines), 1)
        for i, engine in enumerate(engines):
            rates = {r["policy"]: r["images_per_s"] for r in records if r["size"] == size and r["engine"] == engine}
            xs = [j + i * width for j, p in enumerate(policies) if p in rates]
            ax.bar(xs, [rates[p] for p in policies if p in rates], width, label=engine)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(policies))], policies)
        ax.set_yscale("log")
        ax.set_ylabel("images/s (log)")
        ax.set_title(f"{size} px, {records[0]['device']}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _csv(text: str) -> list[str]:
    """Comma-separated items; commas inside a spec's parentheses or brackets stay in their item."""
    return [t.strip() for t in split_top(text, ",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m augpipe.bench", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plugin_flag(parser)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--sizes", default="32,224", help="comma-separated output sizes (default 32,224)")
    parser.add_argument("--policies", default=",".join(DEFAULT_POLICIES),
                        help=f"comma-separated policy names (any of {', '.join(list_policies())})")
    parser.add_argument("--engines", default=",".join(DEFAULT_ENGINES),
                        help=f"comma-separated, of {', '.join(ENGINES)} (default {','.join(DEFAULT_ENGINES)})")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: 256 at 32 px, 64 at 224 px)")
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--targets", default="auto", choices=["auto", "on", "off"],
                        help="also time a detection (+boxes) and a segmentation (+masks) pipeline on augpipe's "
                             "drop-in, torchvision per image and Kornia (auto: with the default policies)")
    parser.add_argument("--json", default=None, help="write the records to this JSON file")
    parser.add_argument("--png", default=None, help="write a bar chart (default: next to --json)")
    return parser


def parse_args(argv: list[str] | None):
    """The flags, checked: (args, sizes, engines, policies); a bad one is a usage error naming it."""
    load_plugins(argv, "python -m augpipe.bench")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in _csv(args.sizes)]
    except ValueError:
        parser.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
    engines = _csv(args.engines)
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        parser.error(f"--engines: unknown {', '.join(bad)}; valid: {', '.join(ENGINES)}")
    policies = _csv(args.policies)
    for p in policies:
        try:
            build_policy(p, size=32)
        except ValueError as err:
            parser.error(f"--policies: {err}")
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    return args, sizes, engines, policies


def main(argv: list[str] | None = None) -> int:
    args, sizes, engines, policies = parse_args(argv)
    device = machine.pick_device(args.device)
    tuned = device.type == "cpu" and tune_cpu_allocator()  # for every engine alike (see augpipe.cpu)

    print(f"allocator tuned: {tuned}; augpipe bench on {device} ({torch.get_num_threads()} threads), views={args.views}", flush=True)
    records = run_bench(policies, engines, sizes, device, views=args.views, warmup=args.warmup,
                        repeats=args.repeats, batch=args.batch,
                        log=lambda s: print(s, flush=True))
    if args.targets == "on" or (args.targets == "auto" and args.policies == ",".join(DEFAULT_POLICIES)):
        records += run_targets_bench(sizes, device, warmup=args.warmup, repeats=args.repeats, batch=args.batch,
                                     log=lambda s: print(s, flush=True))
    print()
    print(table(records))
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(records, indent=1) + "\n").encode())
        png = args.png or os.path.splitext(args.json)[0] + ".png"
        chart(records, png)
        print(f"\nwrote {args.json} and {png}")
    elif args.png:
        chart(records, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
