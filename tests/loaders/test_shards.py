"""WebDataset shards (loaders/sources/shards.py, loaders/backends/torch_shards.py, loaders/backends/dali_shards.py):
written by `loaders.prepare --format wds`, streamed by the torch backend (the `webdataset`
library) and by DALI (`fn.readers.webdataset`), every sample exactly once per epoch across ranks
and workers."""
import importlib.util
import io
import json
import tarfile

import pytest
import torch

from loaders import build_loader, prepare
from loaders.sources.scan import DatasetError


def installed(module: str) -> bool:
    parent = module.split(".")[0]
    return importlib.util.find_spec(parent) is not None and importlib.util.find_spec(module) is not None


DALI = pytest.mark.skipif(not installed("nvidia.dali"), reason="dali not installed")
STREAMERS = ["torch", pytest.param("dali", marks=DALI)]  # the backends that read shards themselves


def pairs(loader):
    return sorted((int(y), x.contiguous().numpy().tobytes()) for images, labels in loader
                  for x, y in zip(images, labels))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("wds") / "digits-test"
    assert prepare.main(["digits:test", str(out), "--format", "wds", "--shard-size", "60"]) == 0
    return out


@pytest.fixture(scope="module")
def reference():
    return pairs(build_loader("torch", "digits:test", batch_size=64, image_size=32, num_workers=0))


def test_prepare_writes_shards_that_round_trip_the_folder(shards, reference):
    names = sorted(p.name for p in shards.iterdir())
    assert names == ["index.json"] + [f"shard-{i:06d}.tar" for i in range(6)]  # 355 = 5 x 60 + 55
    index = json.loads((shards / "index.json").read_text())
    assert index["classes"] == [str(i) for i in range(10)] and sum(index["counts"].values()) == 355
    loader = build_loader("torch", shards, batch_size=64, image_size=32, num_workers=0)
    assert loader.classes == index["classes"] and loader.dataset_size == 355
    assert pairs(loader) == reference  # the same pixels and labels as the folder (native size)


def test_prepare_reshards_shards(shards, reference, tmp_path, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "resharded"
    assert prepare.main([str(shards), str(out), "--format", "wds", "--shard-size", "200"]) == 0
    assert len(list(out.glob("*.tar"))) == 2
    loader = build_loader("torch", out, batch_size=64, image_size=32, num_workers=0)
    assert loader.classes == [str(i) for i in range(10)] and pairs(loader) == reference


@pytest.mark.parametrize("kind", STREAMERS)
def test_brace_notation_streams_the_same_samples(kind, shards, reference):
    brace = build_loader(kind, f"{shards}/shard-{{000000..000005}}.tar", batch_size=64, image_size=32,
                         num_workers=1)
    assert brace.classes == [str(i) for i in range(10)] and pairs(brace) == reference


@pytest.mark.parametrize("kind", STREAMERS)
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_every_sample_once_per_epoch_across_ranks_and_workers(kind, world_size, shards, reference):
    per_rank = [pairs(build_loader(kind, shards, batch_size=50, image_size=32, num_workers=2, rank=r,
                                   world_size=world_size, seed=4)) for r in range(world_size)]
    union = sorted(p for rank in per_rank for p in rank)
    assert union == reference  # disjoint (no duplicates in the union) and complete


@pytest.mark.parametrize("kind", STREAMERS)
def test_epochs_reshuffle_deterministically_and_uneven_shards_are_refused(kind, shards):
    def order(epoch, seed=0):
        loader = build_loader(kind, shards, batch_size=355, image_size=8, num_workers=1, seed=seed)
        loader.set_epoch(epoch)
        return next(iter(loader))[1].tolist()
    assert order(0) == order(0) and order(0) != order(1) and order(1) != order(1, seed=1)
    with pytest.raises(ValueError, match="6 shards do not split evenly over 4 ranks"):
        build_loader(kind, shards, batch_size=8, image_size=8, world_size=4)


@pytest.mark.skipif(not installed("ffcv"), reason="ffcv not installed")
@pytest.mark.slow  # FFCV compiles its pipeline (seconds)
def test_ffcv_reads_shards_unpacked_once_into_the_cache(shards, reference, tmp_path, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path / "cache"))
    loader = build_loader("ffcv", f"{shards}/shard-{{000000..000005}}.tar", batch_size=64, image_size=32,
                          num_workers=1)
    assert loader.classes == [str(i) for i in range(10)] and pairs(loader) == reference
    assert len(list((tmp_path / "cache" / "shards").iterdir())) == 1  # unpacked once, keyed by the shards


@DALI
def test_dali_streams_shards_with_its_index_written_once(shards, tmp_path, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path / "cache"))
    for _ in range(2):
        build_loader("dali", shards, batch_size=64, image_size=32, num_workers=1)
    assert not (tmp_path / "cache" / "shards").exists()  # streamed, not unpacked
    (index,) = (tmp_path / "cache" / "dali-index").iterdir()
    assert sorted(p.name for p in index.iterdir()) == [f"{i:06d}.idx" for i in range(6)]
    assert (index / "000005.idx").read_text().startswith("v1.2 55\n")  # DALI's format, the last shard's 55


@DALI
def test_dali_decodes_random_crops_from_shards_with_the_seed(shards):
    def first(seed):
        loader = build_loader("dali", shards, batch_size=16, image_size=16, num_workers=1, seed=seed,
                              shuffle=False, random_crop=True)
        return next(iter(loader))[0]
    plain = next(iter(build_loader("dali", shards, batch_size=16, image_size=16, num_workers=1, shuffle=False)))[0]
    assert first(3).shape == (16, 3, 16, 16) and torch.equal(first(3), first(3))
    assert not torch.equal(first(3), plain) and not torch.equal(first(3), first(4))


def test_parse_labels_reads_ascii_cls_bytes_on_the_device():
    from loaders.backends.dali_shards import parse_labels
    raw = torch.tensor([[ord(c) for c in text.ljust(5, "\0")] for text in ["7", "123\n", "", "0", "42 "]],
                       dtype=torch.uint8)
    assert parse_labels(raw).tolist() == [7, 123, -1, 0, 42]
    assert parse_labels(torch.zeros(3, 0, dtype=torch.uint8)).tolist() == [-1, -1, -1]  # a batch without .cls


def _copy_shard(src_path, dst_path, keep=lambda member: True, change=lambda member, data: data):
    with tarfile.open(src_path) as src, tarfile.open(dst_path, "w") as dst:
        for member in src:
            if keep(member):
                data = change(member, src.extractfile(member).read())
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))


@pytest.mark.parametrize("kind", STREAMERS)
def test_unlabeled_shards_load_with_label_minus_one(kind, tmp_path, shards):
    _copy_shard(shards / "shard-000000.tar", tmp_path / "a.tar", keep=lambda m: not m.name.endswith(".cls"))
    loader = build_loader(kind, [tmp_path / "a.tar"], batch_size=64, image_size=16, num_workers=1)
    images, labels = next(iter(loader))
    assert loader.classes == [] and images.shape == (60, 3, 16, 16) and torch.equal(labels, torch.full((60,), -1))


@pytest.mark.parametrize("kind", STREAMERS)
def test_json_labels_are_read(kind, tmp_path, shards, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path / "cache"))

    def to_json(member, data):
        if member.name.endswith(".cls"):
            member.name = member.name[:-4] + ".json"
            return json.dumps({"label": int(data)}).encode()
        return data
    _copy_shard(shards / "shard-000000.tar", tmp_path / "a.tar", change=to_json)
    _copy_shard(shards / "shard-000000.tar", tmp_path / "b.tar")
    as_json, as_cls = (pairs(build_loader(kind, [tmp_path / name], batch_size=64, image_size=16, num_workers=1))
                       for name in ("a.tar", "b.tar"))
    assert as_json == as_cls and len(as_json) == 60 and min(label for label, _ in as_json) >= 0


@pytest.mark.parametrize("kind", STREAMERS)
def test_a_damaged_sample_is_named_in_one_line(kind, tmp_path, shards):
    _copy_shard(shards / "shard-000000.tar", tmp_path / "a.tar",
                change=lambda m, data: data[:40] if m.name == "00000006.png" else data)
    loader = build_loader(kind, [tmp_path / "a.tar"], batch_size=16, image_size=8, num_workers=2)
    with pytest.raises(DatasetError, match=r"a\.tar:00000006: unreadable at load time \(UnidentifiedImageError") as err:
        list(loader)
    assert "\n" not in str(err.value) and "BytesIO" not in str(err.value)
    if kind == "torch":  # DALI cannot leave one sample of a stream out
        loader = build_loader(kind, [tmp_path / "a.tar"], batch_size=16, image_size=8, num_workers=2, on_error="skip")
        assert sum(len(labels) for _, labels in loader) == 59
        assert [name for name, _ in loader.skipped] == [f"{tmp_path / 'a.tar'}:00000006"]


def test_prepare_replaces_only_its_own_shard_folders(tmp_path, capsys):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "readme.txt").write_text("mine")
    assert prepare.main(["digits:test", str(mine), "--format", "wds", "--overwrite"]) == 2
    assert "was not written by loaders.prepare (no index.json in it)" in capsys.readouterr().err
    assert (mine / "readme.txt").read_text() == "mine"
    out = tmp_path / "wds"
    assert prepare.main(["digits:test", str(out), "--format", "wds", "--shard-size", "200"]) == 0
    assert prepare.main(["digits:test", str(out), "--format", "wds", "--shard-size", "100"]) == 2  # exists
    assert prepare.main(["digits:test", str(out), "--format", "wds", "--shard-size", "100", "--overwrite"]) == 0
    assert len(list(out.glob("*.tar"))) == 4 and sorted(p.name for p in tmp_path.iterdir()) == ["notes", "wds"]


@pytest.mark.parametrize("kind", STREAMERS)
@pytest.mark.parametrize("drop_last", [False, True])
def test_len_is_the_batches_each_rank_yields_with_unequal_shards(kind, drop_last, tmp_path):
    """Shards of 100, 100, 100 and 55 over 2 ranks: a rank holds 200 or 155 samples, depending on
    the epoch's shard order. len() (what the training schedule counts) follows the rank and the epoch."""
    out = tmp_path / "unequal"
    assert prepare.main(["digits:test", str(out), "--format", "wds", "--shard-size", "100"]) == 0
    seen = set()
    for rank in range(2):
        loader = build_loader(kind, out, batch_size=30, image_size=8, num_workers=1, rank=rank, world_size=2,
                              drop_last=drop_last, seed=1)
        for epoch in range(3):
            loader.set_epoch(epoch)
            expected = len(loader)
            assert sum(1 for _ in loader) == expected
            seen.add(expected)
    assert seen == ({5} if drop_last else {6, 7})  # 155 // 30; ceil(155 / 30) and ceil(200 / 30)


@pytest.mark.parametrize("kind", STREAMERS)
def test_ddp_ranks_get_equal_full_batches_with_drop_last(kind, shards):
    """Shards of 60 and one of 55 over 3 ranks (120, 120 and 115 samples): with drop_last every
    rank yields the same number of full batches (the smallest rank's), so no rank waits alone."""
    sizes = [[len(labels) for _, labels in build_loader(kind, shards, batch_size=20, image_size=8, num_workers=2,
                                                        rank=r, world_size=3, drop_last=True, seed=2)]
             for r in range(3)]
    assert sizes == [[20] * 5] * 3  # 115 // 20 = 5 batches on every rank (120 alone would give 6), all full


def test_concurrent_prepares_into_one_destination_both_succeed(tmp_path):
    """Two `prepare --overwrite` processes into one folder (each stages its own folder, and they take
    turns to swap it in: atomicio.exclusive): both exit 0 and the folder is one whole set of
    shards, never a mix or a half."""
    import subprocess
    import sys
    out = tmp_path / "wds"
    assert prepare.main(["digits:test", str(out), "--format", "wds", "--shard-size", "100"]) == 0
    procs = [subprocess.Popen([sys.executable, "-m", "loaders.prepare", "digits:test", str(out), "--format", "wds",
                               "--shard-size", str(size), "--overwrite"], stderr=subprocess.PIPE, text=True)
             for size in (50, 60)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    index = json.loads((out / "index.json").read_text())
    assert sorted(index["counts"]) == sorted(p.name for p in out.glob("*.tar"))  # one writer's whole set
    assert sum(index["counts"].values()) == 355 and sorted(p.name for p in tmp_path.iterdir()) == ["wds"]


def test_shards_that_do_not_fit_on_disk_leave_the_old_set_whole(tmp_path):
    """RLIMIT_FSIZE (EFBIG, as a full disk gives ENOSPC) under `prepare --overwrite`: one line
    naming dst, the old shards as they were, no staged folder left."""
    import resource
    import subprocess
    import sys
    out = tmp_path / "wds"
    assert prepare.main(["digits:test", str(out), "--format", "wds", "--shard-size", "100"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # a shard of 50 digits is ~40 kB
    proc = subprocess.run([sys.executable, "-m", "loaders.prepare", "digits:test", str(out), "--format", "wds",
                           "--shard-size", "50", "--overwrite"], capture_output=True, text=True, timeout=300,
                          preexec_fn=small_files)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: dst {out}: "), proc.stderr
    assert "File too large" in lines[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wds"]
