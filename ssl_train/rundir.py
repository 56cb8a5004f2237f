"""The `--out` folder of a run: locked while a run writes it, never half-replaced.

- **Lock.** `.RUN.lock` beside the folder is held with `fcntl.flock` for the run's life: a second
  run into the same folder exits at once, naming the holder's pid (the OS drops the lock when a
  process dies, even by `kill -9`).
- **Nothing lost on overwrite.** `--overwrite` replaces runs, nothing else: a folder holding any
  file that no run writes (`RUN_FILES`) is refused, naming those files. It trains into a staging
  folder (`.RUN.staging` beside it) and swaps it in only when the new run has finished: a run
  that fails, or flags that turn out wrong, leave the old results as they were; after the swap no
  stale file of the old run (`linear_eval.json`, `failed.txt`...) remains.
- **No stale temporaries.** Temporary files of writes killed midway (`.NAME.*.tmp`) are removed
  when a run starts; every writer goes through `atomicio.atomic_write`, so they never hold data,
  and files get the usual permissions (`0666 & ~umask`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from atomicio import remove_stale_temporaries, replace_folder

# Everything the project writes into a run folder (ssl_train, ssl_train.linear_eval and the
# experiments runner); `--overwrite` deletes a folder only when it holds nothing else.
RUN_FILES = frozenset({"config.json", "log.csv", "checkpoint.pt", "result.json", "linear_eval.json", "failed.txt"})


def foreign_files(folder: Path) -> list[str]:
    """The entries of `folder` that no run writes (sorted), hidden temporaries of killed writes aside."""
    return sorted(p.name for p in folder.iterdir() if p.name not in RUN_FILES and not
                  (p.name.startswith(".") and p.name.endswith(".tmp")))


class RunError(RuntimeError):
    """A run that cannot start or go on (here: its folder cannot be used as asked); the message
    says why and what to do."""


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

    def __enter__(self) -> Path:
        import fcntl
        if self.out.exists() and not self.out.is_dir():
            raise RunError(f"--out {self.out}: is a file; --out names a folder")
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.lock_path, "a+")
        except OSError as err:  # a file on the way (FileExistsError, NotADirectoryError), no permission
            raise RunError(f"--out {self.out}: cannot create its folder or lock beside it "
                           f"({err.strerror}: {err.filename})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "unknown"
            self._lock.close()
            self._lock = None
            raise RunError(f"--out {self.out}: another run (pid {holder}) is writing this folder; "
                              "wait for it to finish or choose another --out") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"{os.getpid()}\n")
        self._lock.flush()
        try:
            self._choose_work()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.work

    def _choose_work(self) -> None:
        remove_stale_temporaries(self.out)
        finished, started = (self.out / "result.json").exists(), (self.out / "checkpoint.pt").exists()
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

    def commit(self) -> None:
        """The run finished: a staged overwrite replaces the old folder (two renames)."""
        if self.work == self.out:
            return
        replace_folder(self.work, self.out)
        self.work = self.out

    def __exit__(self, exc_type=None, *exc) -> None:
        if exc_type is not None and self.work == self.staging:  # a staged run that failed: the old one stays
            shutil.rmtree(self.staging, ignore_errors=True)
        if self._lock is not None:
            self.lock_path.unlink(missing_ok=True)
            self._lock.close()  # closing releases the flock
            self._lock = None
