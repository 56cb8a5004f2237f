"""atomicio: temporaries of live writers survive another writer's cleanup; concurrent builders
of one file take turns."""
import os
import subprocess
import sys

import pytest

from _augpipe_shared.atomicio import atomic_write_bytes, exclusive, remove_stale_temporaries


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    mine = tmp_path / f".data.bin.{os.getpid()}.abc123.tmp"          # a write in progress here
    stale = tmp_path / f".data.bin.{dead_pid}.xyz789.tmp"           # left by a killed writer
    legacy = tmp_path / ".data.bin.k1ll3d.tmp"                       # no writer recorded
    for f in (mine, stale, legacy):
        f.write_bytes(b"half")
    assert sorted(remove_stale_temporaries(tmp_path, "data.bin")) == sorted([stale, legacy])
    assert mine.exists()
    atomic_write_bytes(tmp_path / "data.bin", b"whole")
    assert (tmp_path / "data.bin").read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == [mine.name]


def test_exclusive_locks_the_folder_other_processes_wait_for(tmp_path):
    target = tmp_path / "cache" / "x.beton"
    probe = ("import fcntl, os, sys\n"
             "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
             "try:\n"
             "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "    print('free')\n"
             "except BlockingIOError:\n"
             "    print('held')\n")

    def other_process_sees():
        return subprocess.run([sys.executable, "-c", probe, str(target.parent)], capture_output=True,
                              text=True).stdout.strip()

    with exclusive(target):
        assert other_process_sees() == "held"
    assert other_process_sees() == "free"
    with pytest.raises(RuntimeError):  # released on errors too
        with exclusive(target):
            raise RuntimeError("build failed")
    assert other_process_sees() == "free"
    assert list(target.parent.iterdir()) == []  # no lock file left beside the user's files


def test_replace_folder_swaps_a_whole_folder_in_and_leaves_nothing_beside_it(tmp_path):
    from _augpipe_shared.atomicio import replace_folder
    dst, staged = tmp_path / "run", tmp_path / ".run.staged"
    staged.mkdir()
    (staged / "a.txt").write_text("first")
    assert replace_folder(staged, dst) == dst and (dst / "a.txt").read_text() == "first"
    staged.mkdir()
    (staged / "b.txt").write_text("second")
    replace_folder(staged, dst)
    assert sorted(p.name for p in dst.iterdir()) == ["b.txt"]  # the old folder whole gone, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging or trash left


def test_nearest_existing_is_where_a_write_would_begin(tmp_path):
    from _augpipe_shared.atomicio import nearest_existing
    (tmp_path / "file").write_text("x")
    assert nearest_existing(tmp_path / "a" / "b") == tmp_path
    assert nearest_existing(tmp_path / "file" / "deeper" / "x") == tmp_path / "file"
    assert nearest_existing(tmp_path) == tmp_path
