"""`python -m loaders.bench`: images/s of each loader backend against a torchvision baseline.

Datasets (from `--shared DIR`, default `$AUGPIPE_DATA`): the CIFAR-10 test JPEGs (10,000 at 32x32,
unpacked once into the cache) and the 200 full-size ImageNet photographs (as an ImageFolder of
links, one class per photo), each loaded at 32 px and 224 px outputs. The baseline is torchvision's
`ImageFolder` with PIL transforms (Resize + CenterCrop + PILToTensor) in a `DataLoader` with the same
workers. One untimed warm-up epoch per loader (FFCV compiles, caches fill), then the median of
`--repeats` timed epochs. FFCV's one-time `.beton` write is reported apart (`prepare_s`).
`--backends dali,dali-bare --random-crop` compares our `dali` backend (our order through an
external source) with DALI's own `fn.readers.file` pipeline (`make bench-load` runs it on the
photographs at 224 px, batch 50: `benchmarks/bench-load-dali.json`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tarfile
import time
from pathlib import Path

import torch

from _augpipe_shared import machine
from _augpipe_shared.atomicio import atomic_write_bytes
from _augpipe_shared.cli import ArgumentParser
from _augpipe_shared.plugins import add_plugin_flag, load_plugins
from _augpipe_shared.timing import SyncTimer
from loaders.build import BACKENDS, DEFAULT_RANDOM_CROP, build_loader
from loaders.sources.cache import cache_dir

# a folder holding cifar10-jpeg.tar.gz (CIFAR-10 as JPEGs, cifar10/{train,test}/<class>/) and
# imagenet-samples/ (full-size JPEG photographs)
DEFAULT_SHARED = Path(os.environ["AUGPIPE_DATA"]) if os.environ.get("AUGPIPE_DATA") else None


def cifar_test(shared: Path) -> Path:
    target = cache_dir() / "cifar10-jpeg"
    if not (target / "cifar10" / "test").exists():
        archive = shared / "cifar10-jpeg.tar.gz"
        if not archive.exists():
            raise SystemExit(f"{archive}: not found (pass --shared DIR holding cifar10-jpeg.tar.gz)")
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    return target / "cifar10" / "test"


def imagenet_folder(shared: Path) -> Path:
    src = shared / "imagenet-samples"
    if not src.is_dir():
        raise SystemExit(f"{src}: not found (pass --shared DIR holding imagenet-samples/)")
    target = cache_dir() / "imagenet-samples-folder"
    for photo in sorted(src.iterdir()):
        folder = target / photo.stem
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / photo.name
        if not link.exists():
            link.symlink_to(photo.resolve())
    return target


def baseline_loader(root: Path, size: int, batch_size: int, workers: int):
    from torchvision import datasets, transforms
    tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()])
    return torch.utils.data.DataLoader(datasets.ImageFolder(str(root), transform=tf), batch_size=batch_size,
                                       shuffle=True, num_workers=workers)


def dali_bare_loader(root: Path, size: int, batch_size: int, workers: int, device, random_crop):
    """DALI as its own examples write it: `fn.readers.file` (DALI's order and shards) -> decode
    (random crop at decode, or the whole image) -> resize: the yardstick for our `dali` backend,
    which feeds our order (as paths) through `fn.external_source`. Yields (images, labels) like a Loader."""
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.plugin.base_iterator import LastBatchPolicy
    from nvidia.dali.plugin.pytorch import DALIGenericIterator

    from loaders.sources.scan import scan_image_folder
    index = scan_image_folder(root)
    on_gpu = device.type == "cuda"

    @pipeline_def(batch_size=batch_size, num_threads=workers, device_id=(device.index or 0) if on_gpu else None, seed=0)
    def pipe():
        encoded, label = fn.readers.file(files=index.files, labels=index.labels, random_shuffle=True, name="files")
        decoder = "mixed" if on_gpu else "cpu"
        if random_crop:
            scale, ratio = DEFAULT_RANDOM_CROP  # what our loader's random_crop=True means
            images = fn.decoders.image_random_crop(encoded, device=decoder, output_type=types.RGB,
                                                   random_area=list(scale), random_aspect_ratio=list(ratio))
            images = fn.resize(images, size=(size, size), antialias=True)
        else:
            images = fn.decoders.image(encoded, device=decoder, output_type=types.RGB)
            images = fn.resize(images, resize_shorter=size, antialias=True)
            images = fn.crop(images, crop=(size, size))
        return images, label

    iterator = DALIGenericIterator([pipe()], ["images", "labels"], reader_name="files", auto_reset=True,
                                   last_batch_policy=LastBatchPolicy.PARTIAL)
    return _Epochs(iterator)


class _Epochs:
    """A DALI iterator as a loader: each pass is one epoch of (images, labels)."""

    def __init__(self, iterator):
        self.iterator = iterator

    def __iter__(self):
        return ((b[0]["images"], b[0]["labels"]) for b in self.iterator)


def time_epochs(loader, device, repeats: int) -> float:
    """Median images/s over `repeats` epochs, after one warm-up epoch."""
    for _ in loader:
        pass
    rates = []
    for _ in range(repeats):
        count, timer = 0, SyncTimer(device)
        with timer:
            for images, _ in loader:
                count += images.shape[0]
        rates.append(count / timer.seconds)
    return statistics.median(rates)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m loaders.bench", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plugin_flag(parser)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                        help="folder holding cifar10-jpeg.tar.gz and imagenet-samples/ (default: $AUGPIPE_DATA)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", default="32,224")
    parser.add_argument("--backends", default=",".join(("baseline",) + BACKENDS.names()),
                        help="of baseline, dali-bare (DALI's own reader pipeline), " + ", ".join(BACKENDS))
    parser.add_argument("--random-crop", action="store_true",
                        help="random resized crop at decode time (scale 0.08-1) instead of the centre square")
    parser.add_argument("--datasets", default="cifar10-test,imagenet-200")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    return parser


def make_loader(backend: str, root: Path, size: int, args, device: torch.device):
    if backend == "baseline":
        return baseline_loader(root, size, args.batch_size, args.workers)
    if backend == "dali-bare":
        return dali_bare_loader(root, size, args.batch_size, args.workers, device, args.random_crop)
    return build_loader(backend, root, batch_size=args.batch_size, image_size=size, device=device,
                        num_workers=args.workers, random_crop=args.random_crop or None)


def bench_dataset(name: str, root: Path, args, device: torch.device) -> list[dict]:
    """One record per (size, backend) of one dataset; a backend that cannot be imported is skipped."""
    records = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            start = time.perf_counter()
            try:
                loader = make_loader(backend, root, size, args, device)
            except ImportError as err:
                print(f"  skip {backend}: {err}", flush=True)
                continue
            prepare_s = time.perf_counter() - start
            rate = time_epochs(loader, device, args.repeats)
            records.append({"dataset": name, "loader": backend, "size": size, "batch": args.batch_size,
                            "random_crop": args.random_crop, "workers": args.workers, "device": str(device),
                            "images_per_s": round(rate, 1), "prepare_s": round(prepare_s, 2),
                            "torch": torch.__version__, "machine": machine.describe(device)})
            print(f"  {name:<13} {size:>3}px {backend:<8} {rate:9.1f} img/s  (setup {prepare_s:.1f} s)", flush=True)
    return records


def table(records: list[dict]) -> str:
    """Markdown: one row per (dataset, size), one column per loader, ratio to the baseline."""
    names = [b for b in ("baseline", "dali-bare", *BACKENDS) if any(r["loader"] == b for r in records)]
    lines = ["| dataset | size | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for name in dict.fromkeys(r["dataset"] for r in records):
        for size in dict.fromkeys(r["size"] for r in records):
            rates = {r["loader"]: r["images_per_s"] for r in records if r["dataset"] == name and r["size"] == size}
            base = rates.get("baseline") or rates.get("dali-bare")
            cells = [f"{rates[b]:,.0f}" + (f" ({rates[b] / base:.2f}x)" if base and b != "baseline" else "")
                     if b in rates else "n/a" for b in names]
            lines.append(f"| {name} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    load_plugins(argv, "python -m loaders.bench")  # a plugin's backends are valid --backends
    parser = build_parser()
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.shared is None:
        parser.error("--shared: no data folder; pass --shared DIR (or set AUGPIPE_DATA) holding cifar10-jpeg.tar.gz "
                     "and imagenet-samples/")
    roots = {"cifar10-test": lambda: cifar_test(args.shared), "imagenet-200": lambda: imagenet_folder(args.shared)}
    records = []
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        if name not in roots:
            parser.error(f"--datasets: unknown {name!r}; valid: {', '.join(roots)}")
        records += bench_dataset(name, roots[name](), args, device)
    print()
    print(table(records))
    if args.json:
        path = atomic_write_bytes(args.json, (json.dumps(records, indent=1) + "\n").encode())
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
