"""loaders: one interface, three backends, the same data; bad input handled clearly."""
import importlib.util
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import loaders
from loaders import DatasetError, build_loader, scan_image_folder
from loaders.backends.order import epoch_indices
from tests.procs import HAVE_PROC, children

HAVE = {"torch": True,
        "dali": importlib.util.find_spec("nvidia") is not None and importlib.util.find_spec("nvidia.dali") is not None,
        "ffcv": importlib.util.find_spec("ffcv") is not None}
# FFCV compiles its pipeline per loader (seconds): its cases are slow, left out of make test-fast
KINDS = [pytest.param(k, marks=[pytest.mark.skipif(not HAVE[k], reason=f"{k} not installed")]
                      + ([pytest.mark.slow] if k == "ffcv" else [])) for k in ("torch", "dali", "ffcv")]


@pytest.fixture(scope="module", autouse=True)
def isolated_cache(tmp_path_factory):
    old = os.environ.get("AUGPIPE_CACHE")
    os.environ["AUGPIPE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("AUGPIPE_CACHE")
    else:
        os.environ["AUGPIPE_CACHE"] = old


def epoch_pairs(loader):
    """(label, image bytes) for every sample of one epoch, sorted: the epoch's multiset."""
    pairs = []
    for images, labels in loader:
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        pairs += [(int(y), x.contiguous().numpy().tobytes()) for x, y in zip(images.cpu(), labels.cpu())]
    return sorted(pairs)


@pytest.mark.parametrize("kind", KINDS)
def test_digits_epoch_has_every_image_once(kind):
    loader = build_loader(kind, "digits", batch_size=100, image_size=32, seed=3, num_workers=1)
    index = scan_image_folder(loaders.resolve_source("digits"))
    assert loader.dataset_size == len(index) == 1442 and len(loader) == 15
    assert loader.classes == [str(i) for i in range(10)]
    sizes, labels = [], []
    for images, y in loader:
        assert images.shape[1:] == (3, 32, 32)
        sizes.append(len(y))
        labels += y.tolist()
    assert sizes == [100] * 14 + [42]
    assert sorted(labels) == sorted(index.labels)


@pytest.fixture(scope="module")
def digits_archives(tmp_path_factory):
    """The embedded digits packed as users have data: a .tar.gz of a dataset (train/ and test/ in a
    wrapping folder) and a .zip of one ImageFolder."""
    import tarfile
    import zipfile
    folder, digits = tmp_path_factory.mktemp("archives"), loaders.materialize("digits")
    with tarfile.open(folder / "digits.tar.gz", "w:gz") as tar:
        tar.add(digits, arcname="mydigits")
    with zipfile.ZipFile(folder / "test-only.zip", "w") as z:
        for f in sorted((digits / "test").rglob("*.png")):
            z.write(f, f"wrap/{f.relative_to(digits / 'test')}")
    return folder


@pytest.mark.parametrize("kind", KINDS)
def test_archives_load_on_every_backend_as_their_folder(kind, digits_archives):
    reference = epoch_pairs(build_loader("torch", "digits:test", batch_size=64, image_size=32, num_workers=1))
    for source in (f"{digits_archives / 'digits.tar.gz'}:test", digits_archives / "test-only.zip"):
        loader = build_loader(kind, source, batch_size=64, image_size=32, num_workers=1)  # native size: equal pixels
        assert loader.classes == [str(i) for i in range(10)]
        assert epoch_pairs(loader) == reference, source


def test_an_archive_unpacks_once_keyed_by_its_content(digits_archives, tmp_path):
    archive = digits_archives / "digits.tar.gz"
    first = loaders.resolve_source(archive)
    assert first.name == "train" and loaders.resolve_source(f"{archive}:test") == first.parent / "test"
    assert loaders.resolve_source(archive) == first  # unpacked once
    assert loaders.sources.datasets.splits(str(archive)) == (f"{archive}:train", f"{archive}:test")
    copy = tmp_path / "digits.tar.gz"
    copy.write_bytes(archive.read_bytes())
    before = loaders.resolve_source(copy)
    assert len(list(before.rglob("*.png"))) == 1442
    import tarfile
    with tarfile.open(copy, "w:gz") as tar:  # the same file, other content: unpacked again
        tar.add(loaders.materialize("digits") / "test", arcname="other/train")
        tar.add(loaders.materialize("digits") / "test", arcname="other/test")
    after = loaders.resolve_source(copy)
    assert after != before and len(list(after.rglob("*.png"))) == 355
    with pytest.raises(ValueError, match="test-only.zip:test: the archive holds no test/ folder"):
        loaders.resolve_source(f"{digits_archives / 'test-only.zip'}:test")
    with pytest.raises(FileNotFoundError, match="no such archive"):
        build_loader("torch", tmp_path / "missing.tar.gz", batch_size=4, image_size=8)


@pytest.mark.parametrize("name, reason", [("bad.tar.gz", "ReadError"), ("bad.zip", "BadZipFile"),
                                          ("cut.tar.gz", "EOFError")])
def test_a_damaged_archive_is_named_in_one_line_and_leaves_nothing(name, reason, tmp_path, monkeypatch, capsys):
    import gzip
    import io
    import tarfile
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / name
    if name.startswith("cut"):  # a download cut short: a valid start, no end
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            tar.add(loaders.materialize("digits") / "test", arcname="test")
        archive.write_bytes(gzip.compress(data.getvalue())[:20000])
    else:
        archive.write_bytes(b"not an archive at all")
    with pytest.raises(DatasetError, match=rf"{name}: cannot unpack it \({reason}"):
        loaders.resolve_source(archive)
    assert not list((tmp_path / "cache" / "archives").iterdir())  # no half-unpacked folder left
    from loaders import prepare
    assert prepare.main([str(archive), str(tmp_path / "x.beton")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{name}: cannot unpack it" in err


def test_an_archive_member_outside_its_folder_is_refused(tmp_path):
    import zipfile
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../escaped.png", b"x")
    with pytest.raises(ValueError, match="would land outside the folder"):
        loaders.resolve_source(tmp_path / "evil.zip")
    assert not (tmp_path.parent / "escaped.png").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_same_multiset_as_torch_backend(kind):
    ref = epoch_pairs(build_loader("torch", "digits:test", batch_size=64, image_size=32, seed=1, num_workers=1))
    got = epoch_pairs(build_loader(kind, "digits:test", batch_size=64, image_size=32, seed=9, num_workers=1))
    assert [p[0] for p in got] == [p[0] for p in ref]
    # digits are lossless PNGs at 32 px: no resize, no JPEG, so pixels are identical
    assert [p[1] for p in got] == [p[1] for p in ref]


@pytest.mark.parametrize("kind", KINDS)
def test_reshuffle_is_deterministic_per_seed_and_epoch(kind):
    def first_labels(loader, epoch):
        loader.set_epoch(epoch)
        return next(iter(loader))[1].tolist()
    # three loaders, not six: each FFCV loader compiles its pipeline (seconds)
    a, b, other_seed = (build_loader(kind, "digits:test", batch_size=32, image_size=8, seed=seed, num_workers=1)
                        for seed in (0, 0, 1))
    assert first_labels(a, 0) == first_labels(b, 0)           # same seed, same epoch: same order
    assert first_labels(a, 0) != first_labels(a, 1)           # a new epoch reshuffles
    assert first_labels(a, 1) != first_labels(other_seed, 1)  # another seed, another order
    assert first_labels(b, 1) == first_labels(a, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_shards_are_disjoint_and_cover(kind):
    shards = [epoch_pairs(build_loader(kind, "digits:test", batch_size=50, image_size=32, seed=2,
                                       num_workers=1, rank=r, world_size=2, drop_last=False))
              for r in range(2)]
    everything = epoch_pairs(build_loader("torch", "digits:test", batch_size=50, image_size=32, num_workers=1))
    n = len(everything)  # 355: odd, so one sample is repeated to keep the shards equal
    assert len(shards[0]) == len(shards[1]) == (n + 1) // 2
    combined = sorted(shards[0] + shards[1])
    assert len(set(combined)) >= n - 1  # digits can repeat pixel-for-pixel; labels+pixels nearly unique
    assert set(combined) == set(everything)


def _ordered(kind, source, size, count=None):
    loader = build_loader(kind, source, batch_size=count or 64, image_size=size, shuffle=False, num_workers=1)
    images, labels = next(iter(loader))
    return images.contiguous().int(), labels


@pytest.mark.parametrize("kind", KINDS)
def test_resized_pixels_match_reference_within_tolerance(kind):
    """Downscaling (32 -> 20 px) goes through each library's own antialiased resize.

    Stated tolerance: mean absolute difference <= 3 grey levels, labels identical.
    """
    ref, ref_labels = _ordered("torch", "digits:test", 20)
    got, labels = _ordered(kind, "digits:test", 20)
    assert torch.equal(labels.cpu(), ref_labels)
    assert (got.cpu() - ref).abs().float().mean() <= 3.0


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_cifar_jpegs_match_reference_up_to_decoder(kind, cifar_root):
    """Real JPEGs at native size: only the JPEG decoders differ (Pillow vs DALI's libjpeg-turbo
    settings; FFCV stores Pillow's pixels raw). Stated tolerance: mean |diff| <= 1 level."""
    ref, ref_labels = _ordered("torch", cifar_root / "test", 32, 256)
    got, labels = _ordered(kind, cifar_root / "test", 32, 256)
    assert torch.equal(labels.cpu(), ref_labels)
    assert (got.cpu() - ref).abs().float().mean() <= 1.0


def test_epoch_indices_shards_are_a_partition():
    for n, w in [(10, 3), (11, 2), (7, 7)]:
        parts = [epoch_indices(n, epoch=1, seed=0, shuffle=True, rank=r, world_size=w, drop_last=True)
                 for r in range(w)]
        flat = np.concatenate(parts)
        assert len(set(flat.tolist())) == len(flat) == (n // w) * w


@pytest.mark.parametrize("n, w", [(10, 3), (11, 2), (7, 7), (5, 8), (100, 4)])
def test_epoch_orders_cover_the_data_differ_by_epoch_and_reproduce(n, w):
    parts = [epoch_indices(n, epoch=2, seed=5, shuffle=True, rank=r, world_size=w) for r in range(w)]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) == -(-n // w)  # equal shards (DDP lockstep)
    flat = np.concatenate(parts)
    assert set(flat.tolist()) == set(range(n))                           # every sample, every epoch
    assert len(flat) - n == -(-n // w) * w - n                           # padding is the only repeat
    again = [epoch_indices(n, epoch=2, seed=5, shuffle=True, rank=r, world_size=w) for r in range(w)]
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))       # (seed, epoch) fixes the order
    if n >= 10:
        other = np.concatenate([epoch_indices(n, epoch=3, seed=5, shuffle=True, rank=r, world_size=w)
                                for r in range(w)])
        assert not np.array_equal(flat, other)                           # epochs differ
        assert not np.array_equal(flat, np.concatenate(
            [epoch_indices(n, epoch=2, seed=6, shuffle=True, rank=r, world_size=w) for r in range(w)]))
    assert np.array_equal(epoch_indices(n, epoch=4, seed=5, shuffle=False), np.arange(n))
    with pytest.raises(ValueError, match="rank must be in"):
        epoch_indices(n, epoch=0, seed=0, shuffle=True, rank=w, world_size=w)


@pytest.mark.parametrize("kind", KINDS)
def test_random_crop_at_decode_gives_image_size(kind):
    loader = build_loader(kind, "digits:test", batch_size=64, image_size=24, random_crop=True, num_workers=1)
    images, _ = next(iter(loader))
    assert images.shape == (64, 3, 24, 24)
    center = next(iter(build_loader(kind, "digits:test", batch_size=64, image_size=24, num_workers=1)))[0]
    assert not torch.equal(images, center)


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory):
    """Images of every awkward kind, in two classes."""
    root = tmp_path_factory.mktemp("odd")
    a, b = root / "a", root / "b"
    a.mkdir(), b.mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(a / "rgb.jpg")
    Image.fromarray(rgb[..., 0]).save(a / "gray.png")
    Image.fromarray(rgb).convert("CMYK").save(a / "cmyk.jpg")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(a / "rgba.png")
    Image.fromarray(rgb).convert("P").save(b / "palette.png")
    Image.fromarray((rng.integers(0, 65535, (30, 30))).astype(np.uint16)).save(b / "gray16.png")
    Image.fromarray((rng.integers(0, 200, (30, 30))).astype(np.uint16)).save(b / "gray16low.png")  # 8-bit values
    Image.fromarray(rgb[:2, :3]).save(b / "tiny.png")
    Image.fromarray(rng.integers(0, 256, (3, 300, 3), dtype=np.uint8)).save(b / "long.png")
    return root


@pytest.mark.parametrize("kind", KINDS)
def test_awkward_images_become_rgb_of_image_size(kind, odd_folder):
    """Every mode and shape gives the reference RGB (the torch backend's): FFCV exactly (its
    .beton stores the reference decode), DALI within 3 grey levels mean per image (its own
    decoders and resampling; measured <= 1.3 at 16 px, <= 0.4 at 32 px)."""
    loader = build_loader(kind, odd_folder, batch_size=9, image_size=16, shuffle=False, num_workers=1)
    images, labels = next(iter(loader))
    assert images.shape == (9, 3, 16, 16)
    assert labels.tolist() == [0] * 4 + [1] * 5
    ref = next(iter(build_loader("torch", odd_folder, batch_size=9, image_size=16, shuffle=False, num_workers=1)))[0]
    if kind == "ffcv":
        assert torch.equal(images, ref)
    per_image = (images.float() - ref.float()).abs().mean(dim=(1, 2, 3))
    assert per_image.max() <= 3.0, dict(zip(loader._backend.index.files, per_image.tolist()))


@pytest.fixture
def broken_folder(tmp_path):
    root = tmp_path / "broken"
    (root / "cat").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "cat" / f"ok{i}.jpg")
    data = (root / "cat" / "ok0.jpg").read_bytes()
    (root / "cat" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "cat" / "empty.jpg").write_bytes(b"")
    (root / "cat" / "notes.png").write_text("not an image")
    return root


def test_broken_files_are_named_or_skipped(broken_folder):
    with pytest.raises(DatasetError, match="3 unreadable") as err:
        build_loader("torch", broken_folder, batch_size=2, image_size=8)
    message = str(err.value)
    assert "truncated.jpg" in message and "empty.jpg (empty file)" in message and "notes.png" in message
    loader = build_loader("torch", broken_folder, batch_size=2, image_size=8, on_error="skip")
    assert loader.dataset_size == 4
    assert sorted(os.path.basename(f) for f, _ in loader.skipped) == ["empty.jpg", "notes.png", "truncated.jpg"]
    assert sum(len(y) for _, y in loader) == 4


def test_broken_and_looping_symlinks_are_named_or_skipped(broken_folder):
    (broken_folder / "cat" / "dangling.jpg").symlink_to(broken_folder / "nowhere.jpg")
    (broken_folder / "cat" / "loop.jpg").symlink_to(broken_folder / "cat" / "loop.jpg")
    with pytest.raises(DatasetError, match="5 unreadable") as err:
        build_loader("torch", broken_folder, batch_size=2, image_size=8)
    assert "dangling.jpg (broken symbolic link" in str(err.value) and "loop.jpg (broken symbolic link" in str(err.value)
    loader = build_loader("torch", broken_folder, batch_size=2, image_size=8, on_error="skip")
    skipped = {os.path.basename(f): reason for f, reason in loader.skipped}
    assert skipped["dangling.jpg"].startswith("broken symbolic link") and "loop.jpg" in skipped
    assert loader.dataset_size == 4


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "no such directory"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no image files"),
    (lambda p: (p / "flat").mkdir() or (p / "flat" / "x.jpg").write_bytes(b"") or p / "flat", "1 unreadable image"),
    (lambda p: (p / "hollow" / "c").mkdir(parents=True) or p / "hollow", "no image files"),
    (lambda p: _colour_folder(p / "gap", {"a": (9, 9, 9)}) and (p / "gap" / "b").mkdir() or p / "gap",
     "class folder\\(s\\) without images: b"),
])
def test_bad_folders_give_one_line_errors(tmp_path, make, message):
    with pytest.raises(DatasetError, match=message) as err:
        build_loader("torch", make(tmp_path), batch_size=2, image_size=8)
    assert "\n" not in str(err.value)


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="larger than the 355 images per rank.*drop_last=True"):
        build_loader("torch", "digits:test", batch_size=1000, image_size=8, drop_last=True)
    with pytest.raises(ValueError, match="unknown loader kind 'jax'; valid: torch, dali, ffcv"):
        build_loader("jax", "digits", batch_size=2, image_size=8)
    with pytest.raises(ValueError, match="on_error must be"):
        build_loader("torch", "digits", batch_size=2, image_size=8, on_error="ignore")


@pytest.mark.parametrize("arguments, message", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"batch_size": 4.0}, "batch_size must be an integer >= 1, got 4.0"),
    ({"world_size": 0}, "world_size must be an integer >= 1, got 0"),
    ({"rank": 2, "world_size": 2}, r"rank must be an integer in \[0, world_size=2\), got 2"),
    ({"num_workers": -1}, "num_workers must be an integer >= 0, got -1"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"device": "tpu"}, "device 'tpu': not a torch device"),
    # checked where it enters, not blamed on the first image at load time
    ({"random_crop": ((0.9, 0.1), (1, 1))}, r"random_crop must be True or \(\(scale_lo"),
    ({"random_crop": ((float("nan"), 1), (1, 1))}, r"random_crop must be True or"),
    ({"random_crop": (0.5, 1)}, r"random_crop must be True or"),
    ({"source": None}, "source must be a folder, an archive, a dataset name or WebDataset shards, got None"),
    ({"source": []}, r"source: a list must hold the paths of WebDataset shards \(.tar\), got \[\]"),
])
def test_bad_arguments_are_named_where_they_enter(arguments, message):
    arguments = {"source": "digits", "batch_size": 2, "image_size": 8, "num_workers": 0, **arguments}
    with pytest.raises(ValueError, match=message):
        build_loader("torch", **arguments)


@pytest.mark.parametrize("args, message", [
    (["--format", "wds", "--shard-size", "0"], "--shard-size must be >= 1, got 0"),
    (["--max-resolution", "0"], "--max-resolution must be >= 1, got 0"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--workers", "-1"], "--workers must be >= 1, got -1"),
])
def test_prepare_flags_are_checked_before_anything_is_read(args, message, tmp_path, capsys):
    dst = str(tmp_path / ("out" if "wds" in args else "out.beton"))
    with pytest.raises(SystemExit) as exit_:
        from loaders import prepare
        prepare.main(["digits:test", dst, *args])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err == (f"python -m loaders.prepare: error: {message} "
                                             "(see python -m loaders.prepare --help)")  # one line, no usage
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fmt, name", [("beton", "x.beton"), ("wds", "shards")])
def test_prepare_under_a_file_says_so(fmt, name, tmp_path, capsys):
    from loaders import prepare
    (tmp_path / "file").write_text("mine")
    dst = tmp_path / "file" / "deeper" / name
    assert prepare.main(["digits:test", str(dst), "--format", fmt]) == 2
    assert capsys.readouterr().err.strip() == f"error: dst {dst}: {tmp_path / 'file'} is a file, so no folder can be made there"


def test_prepare_names_a_bad_source_in_one_line(tmp_path, capsys):
    from loaders import prepare
    assert prepare.main(["digits:valid", str(tmp_path / "x.beton")]) == 2
    assert capsys.readouterr().err.strip() == "error: 'digits:valid': split must be train or test"


@pytest.mark.skipif(not HAVE["ffcv"], reason="ffcv not installed")
def test_prepare_writes_beton_atomically_and_reports(broken_folder, tmp_path, capsys, monkeypatch):
    from loaders import prepare
    dst = tmp_path / "out" / "cats.beton"
    assert prepare.main([str(broken_folder), str(dst)]) == 2
    assert "3 unreadable" in capsys.readouterr().err and not dst.exists()
    assert prepare.main([str(broken_folder), str(dst), "--on-error", "skip"]) == 0
    out = capsys.readouterr()
    assert "wrote 4 images in 1 classes" in out.out and "skipped" in out.err and "truncated.jpg" in out.err
    loader = build_loader("ffcv", dst, batch_size=4, image_size=20, shuffle=False, num_workers=1)
    images, labels = next(iter(loader))
    assert images.shape == (4, 3, 20, 20) and labels.tolist() == [0, 0, 0, 0]

    # a failure mid-write leaves neither the destination nor a temporary file behind
    def boom(self, dataset, *a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr("ffcv.writer.DatasetWriter.from_indexed_dataset", boom)
    again = tmp_path / "out" / "again.beton"
    with pytest.raises(RuntimeError, match="disk full"):
        prepare.main([str(broken_folder), str(again), "--on-error", "skip"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cats.beton", "cats.beton.json"]


@pytest.mark.skipif(not HAVE["ffcv"], reason="ffcv not installed")
def test_prepare_refuses_to_replace_or_write_where_it_cannot(broken_folder, tmp_path, capsys):
    from loaders import prepare
    dst = tmp_path / "cats.beton"
    dst.write_bytes(b"an earlier file")
    assert prepare.main([str(broken_folder), str(dst), "--on-error", "skip"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and dst.read_bytes() == b"an earlier file"
    # --overwrite replaces only what prepare wrote (a .beton with its .beton.json beside it)
    assert prepare.main([str(broken_folder), str(dst), "--on-error", "skip", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "was not written by loaders.prepare (no cats.beton.json beside it)" in err and len(err.splitlines()) == 1
    assert dst.read_bytes() == b"an earlier file"
    (tmp_path / "cats.beton.json").write_text("{}")  # as if prepared earlier
    stale = tmp_path / ".cats.beton.k1ll3d.tmp"  # a killed write's leftover
    stale.write_bytes(b"half")
    assert prepare.main([str(broken_folder), str(dst), "--on-error", "skip", "--overwrite", "--no-progress"]) == 0
    assert dst.read_bytes() != b"an earlier file" and not stale.exists()
    assert "it/s" not in capsys.readouterr().err  # FFCV's writer bar stays hidden
    (tmp_path / "dir.beton").mkdir()
    assert prepare.main([str(broken_folder), str(tmp_path / "dir.beton")]) == 2
    assert "is a directory" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root ignores permissions: nothing to check here
        return
    assert prepare.main([str(broken_folder), str(locked / "x.beton")]) == 2
    err = capsys.readouterr().err.strip()
    assert "permission denied" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_subset_is_the_same_on_every_backend(kind):
    ref = epoch_pairs(build_loader("torch", "digits:test", batch_size=50, image_size=32, subset=100, seed=4,
                                   num_workers=1))
    got = build_loader(kind, "digits:test", batch_size=50, image_size=32, subset=100, seed=4, num_workers=1)
    assert got.dataset_size == 100 and len(got) == 2
    assert epoch_pairs(got) == ref
    if kind == "ffcv":  # a folder's subset is all FFCV converts: its cached file holds those 100 images
        from loaders.backends.ffcv_backend import open_beton
        assert open_beton(got._backend.beton)[0] == 100  # (a wrong image <-> sample mapping fails the line above)


@pytest.mark.skipif(not HAVE["ffcv"], reason="ffcv not installed")
def test_ffcv_leaves_torch_thread_count_alone():
    """FFCV sets torch's thread count to its worker count for the whole process; we restore it."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        loader = build_loader("ffcv", "digits:test", batch_size=64, image_size=16, num_workers=1)
        assert torch.get_num_threads() == 2
        for _ in loader:
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kind", KINDS)
def test_an_epoch_left_early_does_not_leak_into_the_next(kind):
    loader = build_loader(kind, "digits:test", batch_size=64, image_size=16, shuffle=False, num_workers=1)
    first = next(iter(loader))[1]  # leave epoch 0 after one batch
    full = [y for _, y in loader]  # epoch 1: complete, from its start
    assert sum(len(y) for y in full) == 355
    assert torch.equal(full[0], first)  # shuffle=False: every epoch starts with the same batch


@pytest.mark.parametrize("kind", KINDS)
def test_file_names_that_are_not_utf8_load_on_every_backend(kind, tmp_path):
    root = _colour_folder(tmp_path / "names", {"a": (250, 0, 0), "b": (0, 250, 0)})
    latin1 = os.fsdecode(b"caf\xe9.png")  # a Latin-1 name: not valid UTF-8 (a surrogate escape in str)
    (root / "a" / "0.png").rename(root / "a" / latin1)
    loader = build_loader(kind, root, batch_size=6, image_size=8, shuffle=False, num_workers=1)
    images, labels = next(iter(loader))
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    reds = images[labels == 0][:, 0].float().mean(dim=(1, 2))
    assert (reds > 200).all()  # the renamed image is one of the three red ones


def _colour_folder(root, colours):
    """root/<class>/<i>.png: flat 8x8 images of the given colours, one class per colour."""
    for i, (name, rgb) in enumerate(colours.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for j in range(3):
            Image.new("RGB", (8, 8), tuple(min(255, c + 10 * j) for c in rgb)).save(root / name / f"{j}.png")
    return root


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_of_one_keeps_its_shapes(kind, tmp_path):
    root = _colour_folder(tmp_path / "one", {"red": (200, 0, 0), "blue": (0, 0, 200)})
    loader = build_loader(kind, root, batch_size=4, image_size=8, shuffle=False, num_workers=1)  # 6 = 4 + 2
    shapes = [(tuple(x.shape), tuple(y.shape)) for x, y in loader]
    assert shapes == [((4, 3, 8, 8), (4,)), ((2, 3, 8, 8), (2,))]
    single = build_loader(kind, root, batch_size=5, image_size=8, shuffle=False, num_workers=1)  # 6 = 5 + 1
    assert [(tuple(x.shape), tuple(y.shape)) for x, y in single][-1] == ((1, 3, 8, 8), (1,))


@pytest.mark.slow
@pytest.mark.skipif(not HAVE["ffcv"], reason="ffcv not installed")
def test_ffcv_cache_follows_the_folders_content(tmp_path):
    from loaders.sources.cache import cache_dir
    root = _colour_folder(tmp_path / "edit", {"a": (250, 0, 0), "b": (0, 250, 0)})
    target = root / "a" / "0.png"
    Image.new("RGB", (8, 8), (250, 0, 0)).save(target, format="BMP")  # uncompressed: its size is fixed
    first = next(iter(build_loader("ffcv", root, batch_size=6, image_size=8, shuffle=False, num_workers=1)))[0]
    before = target.stat()
    Image.new("RGB", (8, 8), (0, 0, 250)).save(target, format="BMP")  # same name, same count, other pixels
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # ... and its old mtime restored
    assert target.stat().st_size == before.st_size  # only the content tells them apart
    second = next(iter(build_loader("ffcv", root, batch_size=6, image_size=8, shuffle=False, num_workers=1)))[0]
    assert first[0, 0].float().mean() > 200 and second[0, 2].float().mean() > 200  # now blue
    betons = list((cache_dir() / "beton").glob("edit-*.beton"))
    assert len(betons) == 1  # the stale file was removed


@pytest.mark.skipif(not HAVE["ffcv"], reason="ffcv not installed")
def test_a_beton_knows_its_classes_and_refuses_damage(tmp_path):
    import time

    from loaders import prepare
    from loaders.sources.beton import sidecar_path
    root = _colour_folder(tmp_path / "src", {"cat": (200, 100, 0), "dog": (0, 100, 200)})
    dst = tmp_path / "pets.beton"
    assert prepare.main([str(root), str(dst), "--no-progress"]) == 0
    loader = build_loader("ffcv", dst, batch_size=6, image_size=8, shuffle=False, num_workers=1)
    assert loader.classes == ["cat", "dog"]
    assert next(iter(loader))[1].tolist() == [0, 0, 0, 1, 1, 1]
    good = dst.read_bytes()

    def damaged(data, keep_sidecar=True):
        dst.write_bytes(data)
        if not keep_sidecar:
            sidecar_path(dst).unlink(missing_ok=True)
        start = time.monotonic()
        with pytest.raises(DatasetError) as err:
            build_loader("ffcv", dst, batch_size=6, image_size=8, shuffle=False, num_workers=1)
        assert time.monotonic() - start < 10
        message = str(err.value)
        assert str(dst) in message and "\n" not in message
        return message

    flipped_tail = bytearray(good)
    flipped_tail[-40:] = bytes(b ^ 0xFF for b in flipped_tail[-40:])
    flipped_pixels = bytearray(good)
    flipped_pixels[len(good) // 2] ^= 0xFF
    for data in (good[: len(good) // 2], good[:100], b"", bytes(flipped_tail), bytes(flipped_pixels)):
        assert "damaged .beton" in damaged(data)
    # without its description: structural damage is still one error naming the file
    for data in (good[: len(good) // 2], good[:100], b""):
        damaged(data, keep_sidecar=False)


@pytest.mark.parametrize("kind", KINDS)
def test_an_unlabeled_folder_loads_at_any_depth(kind, tmp_path):
    """Photos with no class subfolders (nested any deep): label UNLABELED (-1), classes [],
    the same images on every backend; other extensions are ignored and listed."""
    from loaders.sources.scan import UNLABELED
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for i, sub in enumerate(["", "2024", "2024/june", "2025"]):
        (root / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / sub / f"{i}.png")
    (root / "2025" / "notes.txt").write_text("not an image")
    (root / "2025" / "anim.gif").write_bytes(b"GIF89a")
    index = scan_image_folder(root)
    assert index.classes == [] and not index.labeled and index.labels == [UNLABELED] * 4
    assert sorted(os.path.basename(f) for f in index.ignored) == ["anim.gif", "notes.txt"]
    loader = build_loader(kind, root, batch_size=3, image_size=8, shuffle=False, num_workers=1)
    assert loader.classes == [] and loader.dataset_size == 4
    got = epoch_pairs(loader)
    assert [y for y, _ in got] == [UNLABELED] * 4
    assert got == epoch_pairs(build_loader("torch", root, batch_size=3, image_size=8, shuffle=False, num_workers=1))


@pytest.mark.parametrize("kind", [k for k in KINDS if k.values[0] != "ffcv"])
def test_a_file_broken_after_the_scan_is_skipped_or_named(kind, tmp_path):
    """skip means skip at load time too (reported in loader.skipped), in the same batches as
    the other files, for the rest of the epoch and the next; raise names the file. (A folder
    cached for FFCV holds its pixels from prepare time: nothing to fail.)"""
    root = _colour_folder(tmp_path / "later", {"a": (200, 0, 0), "b": (0, 0, 200), "c": (0, 200, 0)})
    options = dict(batch_size=2, image_size=8, shuffle=False, num_workers=1)
    skip = build_loader(kind, root, on_error="skip", **options)
    strict = build_loader(kind, root, **options)
    (root / "a" / "0.png").write_bytes(b"no longer a png")   # after the scan: the first batch
    (root / "b" / "1.png").write_bytes(b"no longer a png")   # batch 3 of 5
    (root / "c" / "2.png").unlink()                          # gone: the last batch
    for _ in range(2):
        got = [labels.tolist() for _, labels in skip]
        assert got == [[0], [0, 1], [1], [2, 2]]      # 9 files in batches of 2, three left out
    assert sorted(os.path.basename(f) for f, _ in skip.skipped) == ["0.png", "1.png", "2.png"]
    with pytest.raises(DatasetError, match=r"a/0\.png: unreadable at load time") as err:
        list(strict)
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)  # one line, not the worker's


def test_the_scan_decodes_a_file_again_only_when_it_changed(tmp_path, monkeypatch):
    import loaders.sources.scan as scan
    root = _colour_folder(tmp_path / "memo", {"a": (200, 0, 0), "b": (0, 0, 200)})
    decoded = []
    real = scan._check_image
    monkeypatch.setattr(scan, "_check_image", lambda path: decoded.append(os.path.basename(path)) or real(path))
    first = scan_image_folder(root)
    assert len(decoded) == 6 and first.modes == ["RGB PNG"] * 6
    decoded.clear()
    assert scan_image_folder(root).files == first.files and decoded == []     # unchanged: remembered
    target = root / "b" / "2.png"
    garbage = b"x" * target.stat().st_size                                  # same size, new content
    target.write_bytes(garbage)
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    with pytest.raises(DatasetError, match=r"1 unreadable image file\(s\): .*2\.png"):
        scan_image_folder(root)
    assert decoded == ["2.png"]


@pytest.mark.parametrize("drop_last", [False, True])
def test_num_batches_counts_the_batches_a_rank_gets(drop_last):
    from loaders.backends.order import batches, num_batches
    for n in (1, 7, 10, 64, 65):
        for world in (1, 2, 3):
            for batch in (1, 4, 8):
                order = epoch_indices(n, epoch=0, seed=0, shuffle=True, rank=world - 1, world_size=world,
                                      drop_last=drop_last)
                count = num_batches(n, batch, world - 1, world, drop_last)
                assert isinstance(count, int) and count == len(batches(order, batch, drop_last))


def test_subset_members_are_distinct_sorted_and_checked():
    from loaders.backends.order import subset_members
    members = subset_members(20, 15, seed=3)
    assert len(set(members.tolist())) == 15 and members.tolist() == sorted(members.tolist())
    assert subset_members(20, 1, seed=3).shape == (1,)
    assert subset_members(20, 15, seed=3).tolist() == members.tolist() != subset_members(20, 15, seed=4).tolist()
    assert subset_members(5, None, 0).tolist() == subset_members(5, 9, 0).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"^subset must be >= 1, got 0$"):
        subset_members(20, 0, seed=3)


def _worker_pids(before: set[int]) -> list[int]:
    """This process's children that were not there before (a DataLoader's workers)."""
    return sorted(set(children(os.getpid())) - before)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


@pytest.mark.skipif(not HAVE_PROC, reason="reads child processes from /proc (Linux)")
def test_torch_workers_leave_stop_signals_to_the_main_process_but_end_when_it_says():
    """SIGINT, SIGUSR1 and a SIGTERM from another process (a scheduler signalling the job) leave
    the workers loading: the epoch completes. A SIGTERM from their parent (DataLoader shutdown,
    multiprocessing at exit) ends a worker at once, so an interrupted epoch never hangs the exit."""
    import time
    before = set(children(os.getpid()))
    loader = build_loader("torch", "digits:train", batch_size=32, image_size=8, num_workers=1)
    batches = iter(loader)
    next(batches)
    (worker,) = _worker_pids(before)
    for sig in ("INT", "USR1", "TERM"):
        subprocess.run(["kill", "-s", sig, str(worker)], check=True)
    assert 1 + sum(1 for _ in batches) == len(loader)  # 45 batches, at most 5 loaded ahead: the worker lived
    batches = iter(loader)
    next(batches)
    (worker,) = _worker_pids(before)
    os.kill(worker, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _state(worker) not in ("Z", "gone") and time.monotonic() < deadline:
        time.sleep(0.01)  # polled: the worker's exit, not a guessed delay
    assert _state(worker) in ("Z", "gone")
    del batches
