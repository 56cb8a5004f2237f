"""WebDataset shards: tar files of samples (`KEY.jpg` + `KEY.cls`), read by the `webdataset` library.

Sources (`shard_list`): brace notation (`data/train-{000000..000127}.tar`), a folder holding only
`.tar` files, or a list of paths. `index.json` beside the shards (written by
`python -m loaders.prepare SRC OUT --format wds`) gives the class names and each shard's sample
count; without it the shards' tar headers are counted once, and the samples are unlabeled unless
they carry `.cls` (an integer) or `.json` (`{"label": N}`).

Each epoch (`epoch_shards`): the shard list is permuted by a seed of `(seed, epoch)` (when
shuffling), rank r of W takes every W-th shard, and each DataLoader worker every K-th of those
(the library's `split_by_worker`); within a worker a seeded buffer shuffles samples. So every
sample is seen exactly once per epoch across all ranks and workers. That needs the shards to
split evenly over the ranks: a shard count that W does not divide is refused, naming both
(write a multiple of W shards: `--shard-size`). Shards are whole units of work, so sample counts
per rank match only when shard sizes do (prepare writes equal shards but the last). DALI and FFCV
read shards unpacked once into the cache (`as_folder`).
"""
from __future__ import annotations

import io
import json
import os
import random
import tarfile
from pathlib import Path

import numpy as np

INDEX = "index.json"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "tif", "tiff")


def shard_list(source) -> list[str] | None:
    """The shard paths of `source`, or None when it is not shards (a folder of images, a file...)."""
    if isinstance(source, (list, tuple)):
        return [str(s) for s in source] if source and all(str(s).endswith(".tar") for s in source) else None
    text = str(source)
    if "{" in text and ".." in text and text.endswith(".tar"):
        import braceexpand
        return list(braceexpand.braceexpand(text))
    folder = Path(text)
    if folder.is_dir():
        entries = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != INDEX]
        if entries and all(p.is_file() and p.name.endswith(".tar") for p in entries):
            return sorted(str(p) for p in entries)
    return None


def describe(shards: list[str]) -> dict:
    """`index.json` of the shards' folder when present, else the sample count of each shard
    (tar headers read once) and no class names."""
    missing = [s for s in shards if not Path(s).is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such shard ({len(missing)} of {len(shards)} missing)")
    index = Path(shards[0]).parent / INDEX
    if index.is_file():
        meta = json.loads(index.read_text())
        counts = meta.get("counts", {})
        if all(Path(s).name in counts for s in shards):
            return {"classes": meta.get("classes", []), "counts": [int(counts[Path(s).name]) for s in shards]}
    return {"classes": [], "counts": [_count(s) for s in shards]}


def _count(shard: str) -> int:
    with tarfile.open(shard) as tar:
        return len({m.name.split(".", 1)[0] for m in tar if m.isfile() and not m.name.startswith(".")})


def epoch_shards(shards: list[str], *, epoch: int, seed: int, shuffle: bool, rank: int, world_size: int) -> list[str]:
    """This rank's shards for `epoch`: a seeded permutation (when shuffling), every W-th from `rank`."""
    if len(shards) % world_size:
        raise ValueError(f"{len(shards)} shards do not split evenly over {world_size} ranks, so some samples would "
                         f"be seen twice or never in an epoch; write a multiple of {world_size} shards "
                         "(python -m loaders.prepare SRC OUT --format wds --shard-size N)")
    order = np.random.default_rng([seed, epoch, 0x5A4D]).permutation(len(shards)) if shuffle else range(len(shards))
    return [shards[i] for i in order][rank::world_size]


def sample_label(sample: dict) -> int:
    """The label of a WebDataset sample: `.cls` (an integer), `.json` (`{"label": N}`), else unlabeled (-1)."""
    if "cls" in sample:
        return int(sample["cls"].decode().strip())
    if "json" in sample:
        return int(json.loads(sample["json"]).get("label", -1))
    return -1


def sample_image(sample: dict) -> bytes:
    for ext in IMAGE_EXTENSIONS:
        if ext in sample:
            return sample[ext]
    raise ValueError(f"{sample.get('__url__', '?')}: sample {sample.get('__key__', '?')} holds no image "
                     f"({', '.join(IMAGE_EXTENSIONS)}); it holds {', '.join(k for k in sample if not k.startswith('__'))}")


def dataset(shards: list[str], *, seed: int, epoch: int, rank: int, shuffle_buffer: int, decode):
    """A `webdataset.WebDataset` over this rank's `shards`, split over DataLoader workers, samples
    shuffled in a seeded buffer (when `shuffle_buffer` > 0) and decoded by `decode(bytes) -> array`."""
    import webdataset as wds
    pipeline = wds.WebDataset(shards, shardshuffle=False, nodesplitter=None, workersplitter=wds.split_by_worker,
                              empty_check=False)
    if shuffle_buffer > 0:
        rng = random.Random(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]))
        pipeline = pipeline.shuffle(shuffle_buffer, rng=rng)
    return pipeline.map(lambda sample: (decode(sample_image(sample)), sample_label(sample)))


def write_shards(files: list[str], labels: list[int], classes: list[str], out: Path, shard_size: int) -> list[str]:
    """`files` (with `labels`) as shards of `shard_size` samples in the new folder `out`, with
    `index.json`; the images' own bytes are stored. `out` is the caller's staging folder
    (`loaders.prepare.replace_shards` renames it into place)."""
    import webdataset as wds
    out.mkdir(parents=True)
    counts: dict[str, int] = {}
    for start in range(0, len(files), shard_size):
        name = f"shard-{start // shard_size:06d}.tar"
        with wds.TarWriter(str(out / name)) as sink:
            for i in range(start, min(start + shard_size, len(files))):
                ext = Path(files[i]).suffix.lower().lstrip(".") or "png"
                sink.write({"__key__": f"{i:08d}", ext: Path(files[i]).read_bytes(), "cls": str(labels[i]).encode()})
        counts[name] = min(shard_size, len(files) - start)
    (out / INDEX).write_text(json.dumps({"classes": classes, "counts": counts}, indent=1) + "\n")
    return sorted(str(out / name) for name in counts)


def as_folder(shards: list[str]) -> Path:
    """The shards unpacked once into the cache as an ImageFolder (`<class>/<key>.<ext>`; unlabeled
    samples at the top), for the backends that read files (DALI) or convert them (FFCV's `.beton`).
    Keyed by the shards' paths, sizes and mtimes; written through a temporary folder."""
    import hashlib
    from loaders.datasets import cache_dir, written_once
    meta = describe(shards)
    h = hashlib.sha256()
    for shard in shards:
        st = os.stat(shard)
        h.update(os.fsencode(os.path.abspath(shard)) + f"|{st.st_size}|{st.st_mtime_ns}\n".encode())
    names = meta["classes"]

    def unpack(folder: Path) -> None:
        for shard in shards:
            with tarfile.open(shard) as tar:
                for key, sample in _samples(tar):
                    label, ext = sample_label(sample), next((e for e in IMAGE_EXTENSIONS if e in sample), None)
                    if ext is None:
                        raise ValueError(f"{shard}: sample {key} holds no image ({', '.join(IMAGE_EXTENSIONS)})")
                    # class folders sort as the labels do: the names when known, else zero-padded numbers
                    target = folder if label < 0 else folder / (names[label] if names else f"{label:06d}")
                    target.mkdir(parents=True, exist_ok=True)
                    (target / f"{key}.{ext}").write_bytes(sample[ext])
    return written_once(cache_dir() / "shards" / f"{Path(shards[0]).parent.name}-{h.hexdigest()[:12]}", unpack)


def _samples(tar: tarfile.TarFile):
    """(key, {extension: bytes}) of each sample of an open shard, in order."""
    current, sample = None, {}
    for member in tar:
        if not member.isfile() or member.name.startswith("."):
            continue
        key, _, ext = Path(member.name).name.partition(".")
        if key != current and sample:
            yield current, sample
            sample = {}
        current = key
        sample[ext.lower()] = tar.extractfile(member).read()
    if sample:
        yield current, sample


def open_image(data: bytes):
    """`loaders.decode.load_rgb` of an image held in memory."""
    from loaders.decode import load_rgb
    return load_rgb(io.BytesIO(data))
