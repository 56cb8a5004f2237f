"""Stopping a run when asked, and step checkpoints.

A cluster stops a job with a signal before it kills it: SLURM sends SIGTERM (or SIGUSR1 with
`#SBATCH --signal=USR1@120`), torchrun passes SIGTERM on to its processes, and a person presses
Ctrl-C (SIGINT). Each of them asks the loop to finish the step it is in, write a checkpoint at
that step and exit with `128 + the signal's number` (143 for SIGTERM, 138 for SIGUSR1, 130 for
Ctrl-C), saying where it stopped and the command that resumes it; `--resume` then continues
mid-epoch with the same data order and the same draws. A second Ctrl-C exits at once.

`--checkpoint-every MINUTES` writes such a step checkpoint on a timer, so that a kill -9 loses
at most that much work. Under DDP the ranks agree at the loss checks (`--check-every` steps):
one all-reduce of two flags there, so that every rank stops at the same step and the hot path
gains no host read of its own.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import torch

from ssl_train import dist
from ssl_train.rundir import RunError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class Preempted(RunError):
    """The run stopped on a signal after writing a checkpoint; `exit_code` is 128 + the signal.
    `str()` says where it stopped and which checkpoint holds it; `with_resume(command)` adds how
    to go on (the command differs: `python -m ssl_train ... --resume`, or the same experiment)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum

    def with_resume(self, command: str) -> str:
        return f"{self}; resume with: {command}"


class StopRequests:
    """`with StopRequests() as stops:` the stop signals set `stops.signum` instead of killing the
    process; a second SIGINT raises KeyboardInterrupt (exit now). Handlers are installed only in
    the main thread (Python delivers signals there) and restored on exit."""

    def __init__(self, announce: bool = True):
        self.signum: int | None = None
        self.announce = announce
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, without a checkpoint
        if self.signum is None:
            self.signum = signum
            if self.announce:
                again = "; Ctrl-C again to quit without it" if signum == signal.SIGINT else ""
                print(f"\n{signal.Signals(signum).name}: stopping after this step with a checkpoint{again}",
                      file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class StepControl:
    """After each step: whether to write a step checkpoint (the timer is due) and whether to stop
    (a signal came), the same answer on every rank."""

    def __init__(self, stops: StopRequests, minutes: float, world: int, device: torch.device, main: bool):
        self.stops, self.world, self.device, self.main = stops, world, device, main
        self.interval = minutes * 60
        self.last = time.monotonic()

    def _due(self) -> bool:
        return self.interval > 0 and time.monotonic() - self.last >= self.interval

    def decide(self, at_check: bool) -> tuple[bool, bool]:
        """(checkpoint, stop) after a step; `at_check`: a loss-check step, where the ranks agree."""
        stop, save = self.stops.signum is not None, self._due()
        if self.world > 1:
            if not at_check:
                return False, False
            flags = torch.tensor([float(stop), float(save and self.main)], device=self.device)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            stop, save = bool(flags[0]), bool(flags[1])  # one host read per check, beside the loss's
            if stop and self.stops.signum is None:
                self.stops.signum = int(signal.SIGTERM)  # another rank was signalled: stop the same way
        return save or stop, stop

    def saved(self) -> None:
        self.last = time.monotonic()


def resume_command(argv: list[str]) -> str:
    """The `python -m ssl_train` command line that continues this run: `argv` with --resume
    (and without --overwrite)."""
    args = [a for a in argv if a not in ("--resume", "--overwrite")] + ["--resume"]
    launcher = "torchrun ... -m ssl_train" if dist.world_size() > 1 else f"{os.path.basename(sys.executable)} -m ssl_train"
    return f"{launcher} {shlex.join(args)}"


def requeue() -> str:
    """Under SLURM, put this job back in the queue (`scontrol requeue $SLURM_JOB_ID`); returns what was done."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return "not under SLURM (no SLURM_JOB_ID): nothing requeued"
    try:
        proc = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"scontrol requeue {job} failed ({err})"
    if proc.returncode:
        return f"scontrol requeue {job} failed: {' '.join(proc.stderr.split())[:200]}"
    return f"requeued SLURM job {job}"
