"""What made a result: the versions and a digest of the run code (`versions` in every result.json)."""
from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import _augpipe_shared
import augpipe
import loaders
from _augpipe_shared import machine


def source_digest(roots: list[Path]) -> str:
    """A short hash of every .py file under `roots` (path and bytes): the code that made a result.

    The same config and seed reproduce bit for bit only with the same code; a result's digest tells
    whether another run may stand for it (`experiments.runner.finished_twin`)."""
    h = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            h.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


# the packages whose code decides a run's numbers (experiments/ only plans runs)
CODE_ROOTS = [Path(m.__file__).parent for m in (augpipe, loaders, _augpipe_shared)] + [
    Path(__file__).parent]


def code_digest() -> str:
    """The digest of this installation's run code (`versions.code` in every result.json)."""
    return source_digest(CODE_ROOTS)


def package_version() -> str:
    try:
        return importlib.metadata.version("augpipe")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def run_versions() -> dict:
    return {**machine.versions(), "augpipe": package_version(), "code": code_digest()}
