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
per rank match only when shard sizes do (prepare writes equal shards but the last). The torch
backend (`loaders.backends.torch_shards`) and DALI (`loaders.backends.dali_shards`) stream shards; FFCV
reads them unpacked once into the cache (`as_folder`).
"""
from __future__ import annotations

import io
import json
import os
import random
import tarfile
from pathlib import Path

import numpy as np

from loaders.sources.cache import cache_dir, written_once

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


def image_extension(sample: dict) -> str:
    """The component of `sample` that holds its image (the first of `IMAGE_EXTENSIONS` present)."""
    for ext in IMAGE_EXTENSIONS:
        if ext in sample:
            return ext
    held = ", ".join(k for k in sample if not k.startswith("__"))
    raise ValueError(f"no image ({', '.join(IMAGE_EXTENSIONS)}) in the sample; it holds {held}")


def sample_image(sample: dict) -> bytes:
    return sample[image_extension(sample)]


def dataset(shards: list[str], *, seed: int, epoch: int, rank: int, shuffle_buffer: int, decode):
    """A `webdataset.WebDataset` over this rank's `shards`, split over DataLoader workers, samples
    shuffled in a seeded buffer (when `shuffle_buffer` > 0) and decoded by `decode(bytes) -> array`."""
    import webdataset as wds
    pipeline = wds.WebDataset(shards, shardshuffle=False, nodesplitter=None, workersplitter=wds.split_by_worker,
                              empty_check=False)
    if shuffle_buffer > 0:
        rng = random.Random(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]))
        pipeline = pipeline.shuffle(shuffle_buffer, rng=rng)
    return pipeline.map(lambda sample: _decoded(sample, decode))


def _decoded(sample: dict, decode) -> tuple:
    """(image, label, None), or (None, -1, (name, reason)) for a sample that does not decode: handed
    back, not raised, so the main process names it in one line (a worker's exception would reach
    the caller wrapped in the worker's whole traceback) or leaves it out (`on_error="skip"`)."""
    try:
        return decode(sample_image(sample)), sample_label(sample), None
    except Exception as err:  # Pillow and int() raise many types for a damaged sample
        from loaders.sources.scan import failure_reason
        return None, -1, (sample_name(sample), failure_reason(err))


def sample_name(sample: dict) -> str:
    """`shard.tar:key`: how errors and `loader.skipped` name a sample."""
    return f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"


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
    names = describe(shards)["classes"]

    def unpack(folder: Path) -> None:
        for sample in samples(shards):
            try:
                label, ext = sample_label(sample), image_extension(sample)
            except ValueError as err:
                raise ValueError(f"{sample_name(sample)}: {err}") from None
            # class folders sort as the labels do: the names when known, else zero-padded numbers
            target = folder if label < 0 else folder / (names[label] if names else f"{label:06d}")
            target.mkdir(parents=True, exist_ok=True)
            (target / f"{Path(sample['__key__']).name}.{ext}").write_bytes(sample[ext])
    return written_once(cache_dir() / "shards" / _cache_name(shards), unpack)


def _cache_name(shards: list[str]) -> str:
    """A cache entry's name for `shards`: their folder's name and a key of their paths, sizes and mtimes."""
    import hashlib
    h = hashlib.sha256()
    for shard in shards:
        st = os.stat(shard)
        h.update(os.fsencode(os.path.abspath(shard)) + f"|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"{Path(shards[0]).parent.name}-{h.hexdigest()[:12]}"


def dali_index(shards: list[str]) -> list[str]:
    """DALI's index file of each shard (`wds2idx`, shipped with DALI), written once into the cache:
    without them `fn.readers.webdataset` re-reads every tar header each time a pipeline starts."""
    from wds2idx import IndexCreator

    def write(folder: Path) -> None:
        for i, shard in enumerate(shards):
            with IndexCreator(shard, str(folder / f"{i:06d}.idx"), verbose=False) as creator:
                creator.create_index()
    folder = written_once(cache_dir() / "dali-index" / _cache_name(shards), write)
    return [str(folder / f"{i:06d}.idx") for i in range(len(shards))]


def label_component(shard: str) -> str | None:
    """Which component of the first sample of `shard` holds its label: `cls`, `json`, or None."""
    for sample in samples([shard]):
        return next((ext for ext in ("cls", "json") if ext in sample), None)
    return None


def samples(shards: list[str]):
    """Every sample of `shards` in order, as the `webdataset` library groups tar members:
    `{"__key__": ..., "__url__": shard, extension: bytes, ...}`, extensions lowercased."""
    import webdataset as wds
    return wds.WebDataset(shards, shardshuffle=False, nodesplitter=None, workersplitter=None, empty_check=False)


def open_image(data: bytes):
    """`loaders.sources.decode.load_rgb` of an image held in memory."""
    from loaders.sources.decode import load_rgb
    return load_rgb(io.BytesIO(data))


class ShardReader:
    """What the backends that stream shards share (`loaders.backends.base.SHARD_READERS`): the shards'
    classes and sizes, the refusal of what streams cannot do, each epoch's shards of this rank
    (`epoch_shards`) and the batches it yields."""

    def __init__(self, shards: list[str], config):
        if config.subset:
            raise ValueError("subset: not available for WebDataset shards (they are read as streams); write a "
                             "smaller set of shards instead")
        meta = describe(shards)
        epoch_shards(shards, epoch=0, seed=config.seed, shuffle=False, rank=config.rank,
                     world_size=config.world_size)  # refuses shards that do not split over the ranks
        self.shards, self.config = shards, config
        self.classes, self.skipped = meta["classes"], []
        self._count = dict(zip(shards, meta["counts"]))  # samples per shard
        self.size = sum(meta["counts"])

    @classmethod
    def reads(cls, shards: list[str]) -> bool:
        """Whether this reader streams `shards` itself (else `build_loader` unpacks them into a folder)."""
        return True

    def mine(self, epoch: int, rank: int | None = None) -> list[str]:
        """The shards of `rank` (default: this loader's) in `epoch`, in their order."""
        c = self.config
        return epoch_shards(self.shards, epoch=epoch, seed=c.seed, shuffle=c.shuffle,
                            rank=c.rank if rank is None else rank, world_size=c.world_size)

    def num_batches(self, epoch: int) -> int:
        """The batches this rank yields in `epoch`: its own samples' batches, or with `drop_last`
        the full batches of the rank with the fewest samples, so that no rank waits alone in a
        collective (shards of unequal sizes give ranks different counts)."""
        c = self.config
        held = [sum(self._count[s] for s in self.mine(epoch, r)) for r in range(c.world_size)]
        return min(held) // c.batch_size if c.drop_last else -(-held[c.rank] // c.batch_size)
