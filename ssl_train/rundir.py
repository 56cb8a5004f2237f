"""The `--out` folder of a run: locked while a run writes it, never half-replaced.

- **Lock.** `.RUN.lock` beside the folder is held for the run's life (`RunLock`): a second run
  into the same folder exits at once, naming the live process that holds it. The lock dies with
  its process, even by `kill -9`, and a `--resume` right after takes it over: it is a POSIX record
  lock, which forked children (the loader's workers, which outlive a killed parent by seconds) do
  not inherit, where an `flock` is shared with them.
- **Nothing lost on overwrite.** `--overwrite` replaces runs, nothing else: a folder holding any
  file that no run writes (`RUN_FILES`) is refused, naming those files. It trains into a staging
  folder (`.RUN.staging` beside it) and swaps it in only when the new run has finished: a run
  that fails, or flags that turn out wrong, leave the old results as they were; after the swap no
  stale file of the old run (`linear_eval.json`, `failed.txt`...) remains. A staged run stopped by
  a signal keeps its checkpoint there, and `--resume` continues it (then swaps it in).
- **No stale temporaries.** Temporary files of writes killed midway (`.NAME.*.tmp`) are removed
  when a run starts; every writer goes through `_augpipe_shared.atomicio.atomic_write`, so they never hold data,
  and files get the usual permissions (`0666 & ~umask`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from _augpipe_shared.atomicio import remove_stale_temporaries, replace_folder

# Everything the project writes into a run folder (ssl_train, ssl_train.linear_eval and the
# experiments runner); `--overwrite` deletes a folder only when it holds nothing else.
RUN_FILES = frozenset({"config.json", "config.yaml", "log.csv", "checkpoint.pt", "result.json", "linear_eval.json", "failed.txt",
                       "tensorboard"})


def foreign_files(folder: Path) -> list[str]:
    """The entries of `folder` that no run writes (sorted), hidden temporaries of killed writes aside."""
    return sorted(p.name for p in folder.iterdir() if p.name not in RUN_FILES and not
                  (p.name.startswith(".") and p.name.endswith(".tmp")))


class RunError(RuntimeError):
    """A run that cannot start or go on (here: its folder cannot be used as asked); the message
    says why and what to do."""


class LockHeld(Exception):
    """The lock is held by a live process (`holder`: its pid, or "unknown")."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


class RunLock:
    """An exclusive POSIX record lock (`fcntl.lockf`) on a lock file holding the holder's pid.

    Record locks belong to the process, not to the open file: a forked child does not inherit
    them, and the kernel drops them when the process dies. Within one process they never
    conflict, and closing any file open on the lock file drops the lock, so the process keeps its
    own table of the lock files it holds and never opens one of those again.
    """

    _held: set[tuple[int, int]] = set()  # (device, inode) of the lock files this process holds

    def __init__(self, path: Path, file, stale: str | None):
        self.path, self._file, self.stale = path, file, stale

    @classmethod
    def take(cls, path: Path) -> "RunLock":
        """Lock `path` (created if missing) or raise `LockHeld`; `stale` is the pid a dead holder left."""
        import fcntl
        while True:
            if _path_key(path) in cls._held:  # checked before opening: closing any file of ours on it would unlock it
                raise LockHeld(str(os.getpid()))
            file = open(path, "a+")
            key = _file_key(file)
            try:
                fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _holder(file)
                file.close()
                raise LockHeld(holder) from None
            if _path_key(path) == key:
                break
            file.close()  # a finishing holder removed the file between our open and lock: lock the new one
        file.seek(0)
        left = file.read().strip()
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        cls._held.add(key)
        return cls(path, file, left if left and left != str(os.getpid()) else None)

    def release(self) -> None:
        """Remove the lock file, then unlock (closing the file drops the record lock)."""
        type(self)._held.discard(_file_key(self._file))
        self.path.unlink(missing_ok=True)
        self._file.close()


def _file_key(file) -> tuple[int, int]:
    st = os.fstat(file.fileno())
    return st.st_dev, st.st_ino


def _path_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _holder(file) -> str:
    """The pid of the process holding the record lock on `file` (F_GETLK: the kernel's answer,
    never a pid a dead process left in the file), else the pid written in it, else "unknown"."""
    import fcntl
    import struct
    try:  # struct flock on Linux: short type, short whence, off_t start, off_t len, pid_t pid
        query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        kind, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(file, fcntl.F_GETLK, query))
        if kind != fcntl.F_UNLCK and pid > 0:
            return str(pid)
    except (OSError, struct.error, OverflowError):
        pass
    file.seek(0)
    return file.read().strip() or "unknown"


class RunDir:
    """`with RunDir(out, resume=..., overwrite=...) as work:` write the run into `work`; call
    `commit()` when it has finished (swaps a staged overwrite into place)."""

    def __init__(self, out: Path, *, resume: bool, overwrite: bool):
        if resume and overwrite:
            raise RunError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
        self.out = Path(out).absolute()
        self.resume, self.overwrite = resume, overwrite
        self.lock_path = self.out.parent / f".{self.out.name}.lock"
        self.staging = self.out.parent / f".{self.out.name}.staging"
        self.work = self.out
        self._lock = None
        self._keep = False

    def __enter__(self) -> Path:
        if self.out.exists() and not self.out.is_dir():
            raise RunError(f"--out {self.out}: is a file; --out names a folder")
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._lock = RunLock.take(self.lock_path)
        except LockHeld as held:
            raise RunError(f"--out {self.out}: another run (pid {held.holder}) is writing this folder; "
                           "wait for it to finish or choose another --out") from None
        except OSError as err:  # a file on the way (FileExistsError, NotADirectoryError), no permission
            raise RunError(f"--out {self.out}: cannot create its folder or lock beside it "
                           f"({err.strerror}: {err.filename})") from None
        if self._lock.stale is not None:
            print(f"note: --out {self.out}: took over the lock of pid {self._lock.stale}, which is no longer running",
                  flush=True)
        try:
            self._choose_work()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.work

    def _choose_work(self) -> None:
        remove_stale_temporaries(self.out)
        finished, started = (self.out / "result.json").exists(), (self.out / "checkpoint.pt").exists()
        if self.resume and (self.staging / "checkpoint.pt").exists():  # an --overwrite run that was stopped
            remove_stale_temporaries(self.staging)
            self.work = self.staging
            return
        if self.resume:
            if finished:
                raise RunError(f"--out {self.out}: this run already finished (result.json); nothing to resume")
            return
        if (finished or started) and not self.overwrite:
            what = "a finished run (result.json)" if finished else "an unfinished run (checkpoint.pt)"
            hint = "--overwrite to replace it" if finished else "--resume to continue it or --overwrite"
            raise RunError(f"--out {self.out}: holds {what}; pass {hint}, or choose another --out")
        if self.overwrite and self.out.exists() and any(self.out.iterdir()):
            foreign = foreign_files(self.out)
            if foreign:
                shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
                raise RunError(f"--out {self.out}: --overwrite replaces runs only, and this folder holds what no run "
                               f"writes ({shown}); choose another --out or move those away")
            shutil.rmtree(self.staging, ignore_errors=True)  # a staged run that never finished
            self.staging.mkdir(parents=True)
            self.work = self.staging

    def keep(self) -> None:
        """The run stopped with a checkpoint (a signal): a staged overwrite stays for `--resume`."""
        self._keep = True

    def commit(self) -> None:
        """The run finished: a staged overwrite replaces the old folder (two renames)."""
        if self.work == self.out:
            return
        replace_folder(self.work, self.out)
        self.work = self.out

    def __exit__(self, exc_type=None, *exc) -> None:
        if exc_type is not None and self.work == self.staging and not self._keep:  # failed: the old run stays
            shutil.rmtree(self.staging, ignore_errors=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None
