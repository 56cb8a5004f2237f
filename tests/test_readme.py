"""The README's Python examples run as written, one after the other in one namespace, with
mktestdocs (its shell commands are runs of minutes; the same flags are tested in tests/ssl_train)."""
from pathlib import Path

import pytest
from mktestdocs import check_md_file

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "augpipe-cache"))


def test_the_readmes_python_blocks_run():
    check_md_file(README, memory=True)
