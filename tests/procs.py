"""Child processes of a process, read from /proc (Linux): a run's or a DataLoader's workers."""
from pathlib import Path

HAVE_PROC = Path("/proc/self/task").exists()


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (none once it has exited)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []
