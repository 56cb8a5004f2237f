"""Datasets by name (loaders/sources/downloads.py), without the network: torchvision's downloader is pointed
at local fixture files in its own format, or made to fail as it does offline."""
import importlib.util
import pickle
import urllib.error

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar

import loaders
from loaders import build_loader
from loaders.sources.datasets import splits
from tests.loaders.test_loaders import epoch_pairs

DALI = pytest.mark.skipif(importlib.util.find_spec("nvidia") is None or importlib.util.find_spec("nvidia.dali") is None,
                          reason="dali not installed")
FFCV = pytest.mark.skipif(importlib.util.find_spec("ffcv") is None, reason="ffcv not installed")
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_cifar10(cache, monkeypatch, per_batch=10):
    """CIFAR-10's python format (pickled batches of 3072-byte rows), as torchvision's downloader
    leaves it, with checksums that torchvision is told to accept (they are of the real files)."""
    folder = cache / "downloads" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.permutation(per_batch) % 10]  # every class in every split, as CIFAR
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
        batches[name] = (data, labels)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CLASSES}))
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    return batches


def test_cifar10_by_name_is_written_once_as_an_image_folder(cache, monkeypatch):
    batches = fake_cifar10(cache, monkeypatch)
    loader = build_loader("torch", "cifar10:test", batch_size=10, image_size=32, shuffle=False, num_workers=0)
    assert loader.classes == sorted(CLASSES) and loader.dataset_size == 10
    data, labels = batches["test_batch"]
    images, got = next(iter(loader))
    expected = torch.from_numpy(data.reshape(-1, 3, 32, 32))
    # the folder sorts files by name within their class: match each image to its source row
    for image, label in zip(images, got):
        rows = [i for i, lab in enumerate(labels) if sorted(CLASSES).index(CLASSES[lab]) == int(label)]
        assert any(torch.equal(image, expected[i]) for i in rows)
    assert loaders.resolve_source("cifar10").parent == cache / "cifar10-v1"
    assert len(list((cache / "cifar10-v1" / "train").rglob("*.png"))) == 50
    assert splits("cifar10") == ("cifar10:train", "cifar10:test")
    monkeypatch.setattr(tv_cifar.CIFAR10, "__init__", lambda *a, **k: pytest.fail("downloaded twice"))
    assert loaders.resolve_source("cifar10:test") == cache / "cifar10-v1" / "test"  # written once
    with pytest.raises(ValueError, match="'cifar10:unlabeled': split must be one of train, test"):
        loaders.resolve_source("cifar10:unlabeled")


@pytest.mark.parametrize("kind", [pytest.param("dali", marks=DALI), pytest.param("ffcv", marks=[FFCV, pytest.mark.slow])])
def test_cifar10_by_name_loads_on_every_backend(kind, cache, monkeypatch):
    fake_cifar10(cache, monkeypatch)
    torch_loader = build_loader("torch", "cifar10:test", batch_size=10, image_size=32, num_workers=0)
    loader = build_loader(kind, "cifar10:test", batch_size=10, image_size=32, num_workers=1)
    assert loader.classes == torch_loader.classes == sorted(CLASSES)
    assert epoch_pairs(loader) == epoch_pairs(torch_loader)  # PNGs at native size: the same pixels


def test_offline_names_what_is_missing_the_url_and_the_way_around(cache, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")
    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(OSError) as err:
        build_loader("torch", "cifar100", batch_size=8, image_size=32)
    message = str(err.value)
    assert message.startswith("cifar100: could not get it through torchvision (")
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
    assert f"into {cache / 'downloads'}" in message and "pass a local copy" in message and "\n" not in message
    assert not (cache / "cifar100-v1").exists()  # nothing half-written
