import os
import pathlib

import pytest
import torch

from loaders.datasets import unpacked

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs CUDA (run by make gpu-check)")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="session")
def photo_batch():
    """Real-looking images: a smooth colour field with edges, deterministic (no shared data)."""
    g = torch.Generator().manual_seed(7)
    n, s = 16, 48
    yy, xx = torch.meshgrid(torch.linspace(0, 1, s), torch.linspace(0, 1, s), indexing="ij")
    phase = torch.rand(n, 3, 1, 1, generator=g) * 6.28
    freq = 1 + torch.rand(n, 3, 1, 1, generator=g) * 4
    img = 0.5 + 0.45 * torch.sin(freq * (xx + 0.7 * yy) * 3.14 + phase)
    img[:, :, s // 3: s // 2, s // 4: s // 2] = torch.rand(n, 3, 1, 1, generator=g)
    return (img * 255).round().to(torch.uint8)


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory):
    """CIFAR-10 JPEGs from ../shared/data, unpacked once per session; skipped when absent."""
    archive = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} not found")
    cache = pathlib.Path(os.environ.get("AUGPIPE_DATA_CACHE", tmp_path_factory.mktemp("cifar")))
    return unpacked(archive, cache) / "cifar10"


@pytest.fixture(scope="session")
def imagenet_samples():
    folder = SHARED_DATA / "imagenet-samples"
    if not folder.exists():
        pytest.skip(f"{folder} not found")
    return folder
