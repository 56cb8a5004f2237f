import os
import pathlib
import tarfile

import pytest
import torch

# Real data for the parity tests, named by environment variables (CI's .ci/run sets them):
# AUGPIPE_CIFAR10, the CIFAR-10 JPEG archive (`cifar10/{train,test}/<class>/*.jpg` in a .tar.gz).
# AUGPIPE_PHOTOS, a folder of full-size JPEG photographs (the 200 ImageNet samples).
DATA_HELP = {
    "AUGPIPE_CIFAR10": "a .tar.gz holding cifar10/test/<class>/*.jpg (CIFAR-10 as JPEGs in the ImageFolder layout)",
    "AUGPIPE_PHOTOS": "a folder of full-size JPEG photographs (*.JPEG or *.jpg)",
}


def data_path(variable: str) -> pathlib.Path:
    """The path in `variable`, or a skip whose reason says how to enable the test."""
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"needs real data: set {variable} to {DATA_HELP[variable]}")
    path = pathlib.Path(value)
    if not path.exists():
        pytest.fail(f"{variable}={value} does not exist; expected {DATA_HELP[variable]}")
    return path


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
    """CIFAR-10's test split (`cifar10/test`, 10,000 JPEGs), unpacked once per session: the only
    split the tests read (3 s, against 15-30 s for all 60,000 files)."""
    archive = data_path("AUGPIPE_CIFAR10")
    folder = tmp_path_factory.mktemp("cifar")
    with tarfile.open(archive) as tar:
        tar.extractall(folder, members=[m for m in tar if m.name.startswith("cifar10/test")], filter="data")
    return folder / "cifar10"


@pytest.fixture(scope="session")
def real_photos():
    """48 real photographs (RGB), each resized (antialiased) and centre-cropped to 96 x 96 uint8."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF
    folder = data_path("AUGPIPE_PHOTOS")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))[:48]

    def load(path):
        with Image.open(path) as image:
            return TF.center_crop(TF.resize(TF.pil_to_tensor(image.convert("RGB")), 96, antialias=True), 96)
    return torch.stack([load(f) for f in files])
