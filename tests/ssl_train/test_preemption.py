"""Preemption: a stop signal mid-epoch writes a step checkpoint and exits 128 + the signal; the
resumed run then ends exactly as the uninterrupted one (CPU, same seed), in one process and
in two gloo processes; a second Ctrl-C exits at once; periodic step checkpoints are loadable."""
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--data", "digits", "--image-size", "16", "--batch-size", "128", "--proj-hidden", "32",
        "--proj-dim", "16", "--num-workers", "0", "--no-progress", "--knn-k", "10", "--policy", "simclr",
        "--eval-every", "1", "--checkpoint-every", "0", "--method", "simclr-signalled"]

# SimCLR that signals its own process after step STOP_AT_STEP (counted over this process's life)
# on rank STOP_RANK: a scheduler's SIGTERM at a known point of the epoch. Without STOP_SIGNAL set
# it is plain SimCLR, so the uninterrupted reference run is the same method.
SIGNALLING_PLUGIN = """
import os
import signal
from ssl_train import register_method
from ssl_train.methods.dino import DINO
from ssl_train.methods.simclr import SimCLR


class Signalled:
    steps = 0

    def on_step_end(self, backbone, progress):
        super().on_step_end(backbone, progress)
        Signalled.steps += 1
        if (os.environ.get("STOP_SIGNAL") and Signalled.steps == int(os.environ["STOP_AT_STEP"])
                and os.environ.get("RANK", "0") == os.environ.get("STOP_RANK", "0")):
            for _ in range(int(os.environ.get("STOP_TIMES", "1"))):
                os.kill(os.getpid(), getattr(signal, os.environ["STOP_SIGNAL"]))


@register_method
class SignalledSimCLR(Signalled, SimCLR):
    name = "simclr-signalled"


@register_method
class SignalledDINO(Signalled, DINO):  # its options are DINO's, as flags --dino-signalled.*
    name = "dino-signalled"
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "signalled.py"
    path.write_text(SIGNALLING_PLUGIN)
    return ["--plugin", str(path)]


def run(args, env=(), launcher=()):
    cmd = [*launcher, "-m", "ssl_train", *args] if launcher else [sys.executable, "-m", "ssl_train", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **dict(env)})


def outcome(out: Path) -> dict:
    """What must not depend on an interruption: every metric of every epoch and the final ones."""
    result = json.loads((out / "result.json").read_text())
    keep = ("loss", "knn_top1", "linear_top1", "lr")
    return {"final": [result[k] for k in ("knn_top1", "linear_top1", "knn_top1_random_init")],
            "epochs": [{k: row.get(k) for k in keep} for row in result["epochs"]]}


def torchrun(nproc: int) -> list[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr",
            "127.0.0.1", "--master-port", str(port)]


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1", "SIGINT"])
def test_a_signal_mid_epoch_checkpoints_that_step_and_resume_ends_as_the_uninterrupted_run(sig, tmp_path, plugin):
    args = [*TINY, *plugin, "--epochs", "3"]
    reference = run([*args, "--out", str(tmp_path / "ref")])
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "stopped"
    stopped = run([*args, "--out", str(out)], env={"STOP_SIGNAL": sig, "STOP_AT_STEP": "15"})  # epoch 2, step 4
    signum = getattr(signal, sig)
    assert stopped.returncode == 128 + signum, stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith(f"stopped by {sig} at epoch 2, step 4, checkpoint {out / 'checkpoint.pt'}; resume with: ")
    assert last.endswith(" --resume") and "Traceback" not in stopped.stderr
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (saved["epoch"], saved["step"], len(saved["history"])) == (0, 4, 1)
    assert not (out / "result.json").exists()
    resumed = run([*args, "--out", str(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {out} at epoch 2/3, step 5" in resumed.stdout
    assert outcome(out) == outcome(tmp_path / "ref")  # bit for bit: every loss and accuracy


@pytest.mark.slow
def test_dino_stopped_mid_epoch_resumes_as_the_uninterrupted_run(tmp_path, plugin):
    """The centre, the teacher, the epoch-dependent temperature and frozen last layer survive a
    step checkpoint: a SIGTERM in epoch 2 and --resume end bit for bit as the run without it."""
    args = [*TINY, *plugin, "--epochs", "3", "--method", "dino-signalled", "--dino-signalled.out-dim", "256",
            "--dino-signalled.warmup-teacher-temp-epochs", "3", "--dino-signalled.warmup-teacher-temp", "0.02"]
    reference = run([*args, "--out", str(tmp_path / "ref")])
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "stopped"
    stopped = run([*args, "--out", str(out)], env={"STOP_SIGNAL": "SIGTERM", "STOP_AT_STEP": "15"})
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    resumed = run([*args, "--out", str(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "at epoch 2/3, step 5" in resumed.stdout
    assert outcome(out) == outcome(tmp_path / "ref")
    options = json.loads((out / "result.json").read_text())["config"]["method_options"]
    assert options["out_dim"] == 256 and options["warmup_teacher_temp_epochs"] == 3


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once_in_one_line(tmp_path, plugin):
    out = tmp_path / "run"
    proc = run([*TINY, *plugin, "--epochs", "3", "--out", str(out)],
               env={"STOP_SIGNAL": "SIGINT", "STOP_AT_STEP": "15", "STOP_TIMES": "2"})
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"interrupted at once (the last checkpoint is {out / 'checkpoint.pt'}); "
                                                   "--resume continues from it")
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 0  # epoch 1's, not the step's


@pytest.mark.slow
def test_two_gloo_processes_stop_at_the_same_step_and_resume_as_if_uninterrupted(tmp_path, plugin):
    """Only rank 1 is signalled: the ranks agree at the next loss check (--check-every 2) and
    both stop there; rank 0 writes the checkpoint; the resumed pair ends as an uninterrupted pair."""
    args = [*TINY, *plugin, "--epochs", "2", "--device", "cpu", "--check-every", "2"]
    reference = run([*args, "--out", str(tmp_path / "ref")], launcher=torchrun(2))
    assert reference.returncode == 0, reference.stderr[-3000:]
    out = tmp_path / "stopped"
    stopped = run([*args, "--out", str(out)], launcher=torchrun(2),
                  env={"STOP_SIGNAL": "SIGTERM", "STOP_AT_STEP": "3", "STOP_RANK": "1"})
    assert stopped.returncode != 0 and "stopped by SIGTERM at epoch 1, step 4" in stopped.stderr, stopped.stderr[-3000:]
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (saved["epoch"], saved["step"], saved["in_epoch"]["world"], len(saved["in_epoch"]["ranks"])) == (-1, 4, 2, 2)
    alone = run([*args, "--out", str(out), "--resume"])  # mid-epoch, the step's batches are split by rank
    assert alone.returncode == 2 and alone.stderr.strip() == (
        f"error: --resume: {out / 'checkpoint.pt'} stopped mid-epoch with 2 processes; resume it with as many "
        "(this run has 1)"), alone.stderr
    resumed = run([*args, "--out", str(out), "--resume"], launcher=torchrun(2))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert outcome(out) == outcome(tmp_path / "ref")


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_on_disk_leaves_the_previous_one_whole(tmp_path, plugin):
    """RLIMIT_FSIZE makes every write past the limit fail with EFBIG, as a full disk fails with
    ENOSPC: the run stops with one line naming the checkpoint, and the last one is still loadable."""
    import resource
    args = [*TINY, *plugin, "--epochs", "3", "--out", str(tmp_path / "run")]
    assert run(args, env={"STOP_SIGNAL": "SIGTERM", "STOP_AT_STEP": "15"}).returncode == 128 + signal.SIGTERM
    ckpt = tmp_path / "run" / "checkpoint.pt"
    before = ckpt.read_bytes()
    limit = len(before) // 2

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    proc = subprocess.run([sys.executable, "-m", "ssl_train", *args, "--resume"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, preexec_fn=small_files, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"error: {ckpt}: could not be written (File too large); the previous file, if any, "
                                   "is unchanged")
    assert ckpt.read_bytes() == before and torch.load(ckpt, weights_only=True)["step"] == 4
    assert not [p for p in ckpt.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_periodic_step_checkpoints_let_a_kill_9_resume_where_it_was(tmp_path, plugin):
    """--checkpoint-every (here a step's fraction of a minute: every step) writes step
    checkpoints; kill -9 at step 15 loses only that step, and the resumed run ends as the one
    never interrupted (which checkpointed at epoch ends only)."""
    reference = run([*TINY, *plugin, "--epochs", "2", "--out", str(tmp_path / "ref")])
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    args = [*TINY, *plugin, "--epochs", "2", "--out", str(out), "--checkpoint-every", "1e-9"]
    killed = run(args, env={"STOP_SIGNAL": "SIGKILL", "STOP_AT_STEP": "15"})
    assert killed.returncode == -signal.SIGKILL
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3  # epoch 2, step 4 died unsaved
    resumed = run([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "at epoch 2/2, step 4" in resumed.stdout
    assert outcome(out) == outcome(tmp_path / "ref")


def test_the_cpu_thread_count_is_the_flag_else_omp_num_threads_else_the_free_cores(monkeypatch):
    from ssl_train.parts import cpu_threads
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads(num_workers=2, requested=5) == 5
    assert cpu_threads(num_workers=2) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    cores = len(os.sched_getaffinity(0))
    assert cpu_threads(num_workers=0) == cores and cpu_threads(num_workers=cores + 4) == 1


@pytest.mark.slow
def test_requeue_asks_slurm_to_requeue_the_job_after_the_checkpoint(tmp_path, plugin):
    """--requeue under SLURM (SLURM_JOB_ID set) runs `scontrol requeue ID` once the step checkpoint
    is written; here a stand-in scontrol on PATH records its arguments."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    out = tmp_path / "run"
    proc = run([*TINY, *plugin, "--epochs", "2", "--out", str(out), "--requeue"],
               env={"STOP_SIGNAL": "SIGUSR1", "STOP_AT_STEP": "3", "SLURM_JOB_ID": "4242",
                    "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 128 + signal.SIGUSR1, proc.stderr
    assert calls.read_text() == "requeue 4242\n"
    assert "step 3, checkpoint" in proc.stderr and "; requeued SLURM job 4242; resume with:" in proc.stderr
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3


@pytest.mark.slow
def test_a_stopped_overwrite_keeps_the_old_run_and_resumes_into_its_place(tmp_path, plugin):
    out = tmp_path / "run"
    args = [*TINY, *plugin, "--epochs", "2", "--out", str(out)]
    assert run([*args, "--seed", "1"]).returncode == 0  # the old run, another seed
    old = (out / "result.json").read_bytes()
    stopped = run([*args, "--overwrite"], env={"STOP_SIGNAL": "SIGTERM", "STOP_AT_STEP": "4"})
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    staged = tmp_path / ".run.staging" / "checkpoint.pt"
    assert f"checkpoint {staged}; resume with: " in stopped.stderr and "--overwrite" not in stopped.stderr.splitlines()[-1]
    assert (out / "result.json").read_bytes() == old  # the old run stays until the new one has finished
    resumed = run([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert run([*args, "--out", str(tmp_path / "ref")]).returncode == 0
    assert outcome(out) == outcome(tmp_path / "ref") and not staged.parent.exists()
