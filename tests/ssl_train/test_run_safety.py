"""Run safety: checkpoints hold data not code, nothing lost on overwrite or concurrent runs,
diverged state never checkpointed, moved runs resume, killed writes leave no temporaries."""
import json
import os
import pickle
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssl_train.cli import main
from ssl_train.config import TrainConfig
from ssl_train.rundir import RunDir
from tests.procs import HAVE_PROC, children

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--data", "digits", "--image-size", "16", "--batch-size", "128", "--proj-hidden", "32",
        "--proj-dim", "16", "--num-workers", "0", "--no-progress", "--knn-k", "10", "--policy", "crop"]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "augpipe-cache"))


def run_cli(args, module="ssl_train"):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ}, timeout=600)


class Payload:
    """Unpickling this would create a file: the harmless stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


class Killed(BaseException):
    """The process dying mid-run (no handler of the CLI catches it)."""


def stop_after_first_epoch(monkeypatch):
    from ssl_train import loop
    real = loop.train_epoch

    def once(cfg, parts, device, epoch, *args):
        if epoch >= 1:
            raise Killed("killed")
        return real(cfg, parts, device, epoch, *args)
    monkeypatch.setattr(loop, "train_epoch", once)


@pytest.mark.slow
@pytest.mark.parametrize("module, args", [("ssl_train", ["--resume"]), ("ssl_train.linear_eval", [])])
def test_a_crafted_checkpoint_never_runs_code(tmp_path, module, args):
    out, marker = tmp_path / "run", tmp_path / "pwned"
    out.mkdir()
    torch.save({"config": {}, "trainer": Payload(marker)}, out / "checkpoint.pt")
    argv = [*TINY, "--epochs", "1", "--out", str(out), *args] if module == "ssl_train" else ["--run", str(out)]
    proc = run_cli(argv, module)
    assert proc.returncode == 2, proc.stderr
    assert not marker.exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(out / "checkpoint.pt") in lines[0] and "not a loadable checkpoint" in lines[0]
    assert "a pickle holding more than tensors and plain data (getattr), which is never unpickled here" in lines[0]


@pytest.mark.parametrize("data, reason", [(b"garbage", "not a torch.save file, or a truncated one"),
                                          (None, "not a torch.save file, or a truncated one")])
def test_a_damaged_checkpoint_is_named_with_the_reason_in_one_line(tmp_path, data, reason):
    from ssl_train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    path = tmp_path / "checkpoint.pt"
    if data is None:  # a checkpoint cut short, as a full disk leaves one written in place
        save_checkpoint({"weights": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:3000])
    else:
        path.write_bytes(data)
    with pytest.raises(CheckpointError, match=f"{path}: not a loadable checkpoint \\({reason}\\); delete it") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_overwrite_keeps_the_old_run_until_the_new_one_finishes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert main([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    (out / "linear_eval.json").write_text("{}")  # an artefact of the old run
    old = (out / "result.json").read_text()
    # a bad flag: refused before the folder is touched
    with pytest.raises(SystemExit) as refused:
        main([*TINY, "--epochs", "1", "--out", str(out), "--overwrite", "--policy", "simclrr"])
    assert refused.value.code == 2
    assert (out / "result.json").read_text() == old
    # a run that dies midway: the old results stay whole
    stop_after_first_epoch(monkeypatch)
    with pytest.raises(Killed):
        main([*TINY, "--epochs", "2", "--seed", "3", "--out", str(out), "--overwrite"])
    monkeypatch.undo()
    assert (out / "result.json").read_text() == old and (out / "linear_eval.json").exists()
    assert not (tmp_path / ".run.staging").exists()  # the failed staged run is cleared at once
    # a run that finishes replaces everything, stale artefacts included
    assert main([*TINY, "--epochs", "1", "--seed", "3", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "result.json").read_text())["config"]["seed"] == 3
    assert not (out / "linear_eval.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging, lock or trash left


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    """--overwrite replaces runs only: a project folder with notes and another run is left whole."""
    out = tmp_path / "proj"
    (out / "other_run").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "other_run" / "result.json").write_text("{}")
    (out / "result.json").write_text("{}")  # even beside a run's own file
    assert main([*TINY, "--epochs", "1", "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--out {out}: --overwrite replaces runs only, and this folder holds what no run writes " \
           "(notes.txt, other_run)" in err and len(err.splitlines()) == 1
    assert (out / "notes.txt").read_text() == "mine" and (out / "other_run" / "result.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]  # no staging or lock left


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_out_that_cannot_be_a_folder_is_one_line(where, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker if where == "a file" else blocker / "run"
    assert main([*TINY, "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --out {out}: ") and len(err.splitlines()) == 1
    assert blocker.read_text() == "x"


@pytest.mark.slow
def test_a_second_run_into_a_locked_folder_exits_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    with RunDir(out, resume=False, overwrite=False):
        proc = run_cli([*TINY, "--epochs", "1", "--out", str(out)])
    assert proc.returncode == 2
    assert f"another run (pid {os.getpid()})" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (out / "result.json").exists()


@pytest.mark.slow
def test_non_finite_state_is_never_checkpointed(tmp_path, monkeypatch):
    """The loss stays finite but a BatchNorm statistic does not: the run stops before writing."""
    from ssl_train import loop
    from ssl_train.checkpoint import load_checkpoint
    real = loop.train_epoch

    def poison(cfg, parts, device, epoch, *args):
        row = real(cfg, parts, device, epoch, *args)
        if epoch == 1:
            bn = next(m for m in parts.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
            bn.running_var.fill_(float("inf"))
        return row
    monkeypatch.setattr(loop, "train_epoch", poison)
    cfg = TrainConfig(data="digits", image_size=16, batch_size=128, proj_hidden=32, proj_dim=16, num_workers=0,
                      knn_k=10, epochs=3, policy="crop", out=str(tmp_path / "run"))
    with pytest.raises(loop.NonFiniteLoss, match=r"running_var is not finite after epoch 2.*last good checkpoint"):
        loop.train(cfg, progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 0
    assert not (tmp_path / "run" / "result.json").exists()


@pytest.mark.slow
def test_a_moved_run_resumes_and_killed_writes_leave_no_temporaries(tmp_path, monkeypatch, capsys):
    first, moved = tmp_path / "a" / "run", tmp_path / "b" / "run"
    stop_after_first_epoch(monkeypatch)
    with pytest.raises(Killed):
        main([*TINY, "--epochs", "2", "--out", str(first)])
    monkeypatch.undo()
    moved.parent.mkdir()
    first.rename(moved)
    stale = moved / ".checkpoint.pt.x1y2.tmp"  # what a kill -9 during torch.save leaves
    stale.write_bytes(b"half a checkpoint")
    assert main([*TINY, "--epochs", "2", "--out", str(moved) + "/", "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert not stale.exists() and not list(moved.glob(".*.tmp"))
    result = json.loads((moved / "result.json").read_text())
    assert [row["epoch"] for row in result["epochs"]] == [1, 2]


@pytest.mark.slow
def test_output_files_follow_the_umask(tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert main([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    for name in ("result.json", "config.json", "log.csv", "checkpoint.pt"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_payload_really_would_run(tmp_path):
    """The harness is honest: unpickling the payload without weights_only does create the file."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


def _kill_while_workers_live(proc: subprocess.Popen, epochs_seen: int) -> list[int]:
    """Read the run's epoch lines until it has finished `epochs_seen` epochs, wait for the next
    epoch's loader workers (forked after the checkpoint is written), then kill -9 the main
    process alone; returns the workers it leaves behind."""
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("epoch ")
        if seen < epochs_seen:
            continue
        while proc.poll() is None:  # a condition polled, not a guessed delay: the workers exist or the run ended
            workers = children(proc.pid)
            if workers:
                os.kill(proc.pid, 9)
                proc.wait()
                return workers
            time.sleep(0.01)
        break
    raise AssertionError(f"the run ended (rc {proc.wait()}) before it could be killed: {proc.stderr.read()}")


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_PROC, reason="reads child processes from /proc (Linux)")
def test_a_run_killed_while_its_workers_live_resumes_at_once_every_time(tmp_path):
    """kill -9 of the main process leaves its loader workers running for seconds (they notice the
    parent's death on a timer); the lock must die with the main process all the same, so that
    `--resume` right away takes it, every time, and says it took over a stale lock."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "ssl_train", *TINY, "--num-workers", "2", "--epochs", "8", "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = proc.pid
    for attempt in range(3):
        orphans = _kill_while_workers_live(proc, epochs_seen=1)
        proc = subprocess.Popen([*argv, "--resume"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        first = proc.stdout.readline()
        alive = [w for w in orphans if Path(f"/proc/{w}").exists()]
        assert first.strip() == f"note: --out {out}: took over the lock of pid {killed}, which is no longer running", \
            (attempt, first, proc.stderr.read() if proc.poll() is not None else "")
        assert "resuming" in proc.stdout.readline()
        killed = proc.pid
        if attempt == 0:
            assert alive, "the test must kill the run while its workers still live"
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    result = json.loads((out / "result.json").read_text())
    assert [row["epoch"] for row in result["epochs"]] == list(range(1, 9))
