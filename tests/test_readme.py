"""The Python examples of the README and of the getting-started page run as written, one after
the other in one namespace, with mktestdocs (their shell commands are runs of minutes; the same
flags are tested in tests/ssl_train and tests/experiments)."""
from pathlib import Path

import pytest
from mktestdocs import check_md_file

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "augpipe-cache"))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_python_blocks_run(page):
    check_md_file(page, memory=True)
