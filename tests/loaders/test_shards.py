"""WebDataset shards (loaders/shards.py, loaders/shard_backend.py): written by `loaders.prepare
--format wds`, streamed by the torch backend, every sample exactly once per epoch across ranks
and workers."""
import importlib.util
import json
import tarfile

import pytest
import torch

from loaders import build_loader, prepare


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
    brace = build_loader("torch", f"{shards}/shard-{{000000..000005}}.tar", batch_size=64, image_size=32,
                         num_workers=0)
    assert pairs(brace) == reference


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_every_sample_once_per_epoch_across_ranks_and_workers(world_size, shards, reference):
    per_rank = [pairs(build_loader("torch", shards, batch_size=50, image_size=32, num_workers=2, rank=r,
                                   world_size=world_size, seed=4)) for r in range(world_size)]
    union = sorted(p for rank in per_rank for p in rank)
    assert union == reference  # disjoint (no duplicates in the union) and complete


def test_epochs_reshuffle_deterministically_and_uneven_shards_are_refused(shards):
    def order(epoch, seed=0):
        loader = build_loader("torch", shards, batch_size=355, image_size=8, num_workers=0, seed=seed)
        loader.set_epoch(epoch)
        return next(iter(loader))[1].tolist()
    assert order(0) == order(0) and order(0) != order(1) and order(1) != order(1, seed=1)
    with pytest.raises(ValueError, match="6 shards do not split evenly over 4 ranks"):
        build_loader("torch", shards, batch_size=8, image_size=8, world_size=4)


def installed(module: str) -> bool:
    parent = module.split(".")[0]
    return importlib.util.find_spec(parent) is not None and importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("kind", [
    pytest.param("dali", marks=pytest.mark.skipif(not installed("nvidia.dali"), reason="dali not installed")),
    pytest.param("ffcv", marks=[pytest.mark.skipif(not installed("ffcv"), reason="ffcv not installed"),
                                pytest.mark.slow])])  # FFCV compiles its pipeline (seconds)
def test_dali_and_ffcv_read_shards_unpacked_once_into_the_cache(kind, shards, reference, tmp_path, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path / "cache"))
    loader = build_loader(kind, shards, batch_size=64, image_size=32, num_workers=1)
    assert loader.classes == [str(i) for i in range(10)] and pairs(loader) == reference
    assert len(list((tmp_path / "cache" / "shards").iterdir())) == 1  # unpacked once, keyed by the shards


def test_unlabeled_shards_load_with_label_minus_one(tmp_path, shards):
    with tarfile.open(shards / "shard-000000.tar") as src, tarfile.open(tmp_path / "a.tar", "w") as dst:
        for member in src:
            if not member.name.endswith(".cls"):
                dst.addfile(member, src.extractfile(member))
    loader = build_loader("torch", [tmp_path / "a.tar"], batch_size=64, image_size=16, num_workers=0)
    images, labels = next(iter(loader))
    assert loader.classes == [] and images.shape == (60, 3, 16, 16) and torch.equal(labels, torch.full((60,), -1))


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


def test_ddp_ranks_get_equal_full_batches_with_drop_last(shards):
    """Shards of 60 and one of 55 over 3 ranks (120, 120 and 115 samples): with drop_last every
    rank yields the same number of full batches (the smallest rank's), so no rank waits alone."""
    sizes = [[len(labels) for _, labels in build_loader("torch", shards, batch_size=20, image_size=8, num_workers=2,
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
