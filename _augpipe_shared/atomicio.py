"""Atomic file writes, shared by every package (docs/ARCHITECTURE.md).

`atomic_write(path, write)` calls `write(tmp)` on a temporary file next to `path` (named
`.NAME.PID.*.tmp`), gives it the usual permissions (`0666 & ~umask`, not `mkstemp`'s 0600) and
renames it over `path`: a reader sees the old file or the new one, never half of one. A write
killed midway (kill -9) leaves its temporary behind; `remove_stale_temporaries` deletes those whose
writer process is gone (a live writer's, another run's in progress, stay), and since they never
carry the final name nothing ever reads them as data. `exclusive(path)` makes concurrent builders
of one file take turns (an advisory lock on its folder), so the second finds the first one's result.
`replace_folder(staged, dst)` swaps a completed folder in for another (a run, a set of shards).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class WriteError(OSError):
    """A file that could not be written (a full disk, a file-size limit, no permission): one line
    naming it and why; the file that was there before, if any, is unchanged."""

    def __str__(self) -> str:
        return self.strerror  # the message alone, without "[Errno N]"


def _os_error_in(err: BaseException) -> OSError | None:
    """The OSError behind `err` (itself, or in its cause/context chain): torch.save reports a
    full disk as a RuntimeError whose context holds the real EFBIG or ENOSPC."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write `path` through `write(tmp)` and a rename; a failed write raises `WriteError` and
    leaves `path` as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
        os.close(fd)
    except OSError as err:
        raise WriteError(err.errno, f"{path}: cannot be written ({err.strerror or err})") from None
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_error_in(err)
        if isinstance(err, WriteError) or (cause is None and not isinstance(err, OSError)):
            raise  # already ours, or a writer's own error that is not about the file
        why = cause.strerror or str(cause)
        raise WriteError(cause.errno, f"{path}: could not be written ({why}); the previous file, if any, is "
                                      "unchanged") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, write)


def _writer_alive(tmp: Path) -> bool:
    """Whether the process named in `.NAME.PID.RANDOM.tmp` still runs (on this machine)."""
    parts = tmp.name[:-len(".tmp")].rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False  # no writer recorded: a leftover of an older version
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, name: str = "*") -> list[Path]:
    """Delete the `.NAME.*.tmp` files that killed writes left in `folder` (their writer process is
    gone); returns them. Temporaries of live writers are kept: they are writes in progress."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for tmp in folder.glob(f".{name}.*.tmp"):
            if not _writer_alive(tmp):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


@contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[None]:
    """Hold an advisory lock (`fcntl.flock`) on the folder of `path` for the block: one process
    at a time builds files in that folder; the others wait, then see what it built. The folder
    itself is the lock, so no lock file is left beside the user's files; the OS drops the lock
    when a holder dies."""
    import fcntl
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def replace_folder(staged: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """`staged` (a completed folder beside `dst`) renamed to `dst`; an existing `dst` is first moved
    aside and removed after, so readers see the old folder or the new one, never a mix."""
    staged, dst = Path(staged), Path(dst)
    if dst.exists():
        trash = dst.parent / f".{dst.name}.{os.getpid()}.old"
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(dst, trash)
        os.replace(staged, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staged, dst)
    return dst


def nearest_existing(path: str | os.PathLike) -> Path:
    """`path`, or the nearest folder above it that exists: where a write to `path` would begin
    (a file there means nothing can be made at `path`)."""
    place = Path(path)
    while not place.exists() and place != place.parent:
        place = place.parent
    return place


def write_text(text: str, path: str | os.PathLike) -> Path:
    """`text` into `path`, atomically."""
    return atomic_write_bytes(path, text.encode())


def write_json(data, path: str | os.PathLike) -> Path:
    """`data` as indented JSON (one trailing newline) into `path`, atomically."""
    return write_text(json.dumps(data, indent=1) + "\n", path)
