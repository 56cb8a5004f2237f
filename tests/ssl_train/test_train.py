"""ssl_train end to end on the embedded digits: results, time account, resume, errors, DDP."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssl_train.cli import build_parser, main
from ssl_train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--data", "digits", "--image-size", "16", "--batch-size", "64", "--proj-hidden", "64",
        "--proj-dim", "32", "--num-workers", "0", "--no-progress", "--knn-k", "20"]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "augpipe-cache"))


def run_main(args, capsys) -> tuple[int, str]:
    """`python -m ssl_train ARGS` in this process: (exit status, stderr). The process boundary
    itself (no traceback reaches stderr, kill -9) is what the subprocess tests check."""
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    return code, capsys.readouterr().err


def run_cli(args, env=None):
    return subprocess.run([sys.executable, "-m", "ssl_train", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


@pytest.mark.slow
def test_run_writes_result_with_accuracies_and_time_account(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--epochs", "2", "--out", str(out), "--policy", "crop", "--method", "simclr",
                 "--negatives", "8"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert 0.1 < result["knn_top1"] <= 1 and 0 <= result["linear_top1"] <= 1
    t = result["time"]
    assert t["data_s"] > 0 and t["augment_s"] > 0 and t["model_s"] > 0
    assert t["total_s"] == pytest.approx(t["data_s"] + t["augment_s"] + t["model_s"] + t["eval_s"])
    assert set(t["augment_ops_s"]) == {"rrc+flip", "normalize"} and t["aug_engine"] == "augpipe"
    assert result["config"]["negatives"] == "8" and result["config"]["policy"] == "crop"
    assert [row["epoch"] for row in result["epochs"]] == [1, 2]
    assert json.loads((out / "config.json").read_text()) == result["config"]
    from ssl_train.provenance import code_digest
    assert result["versions"]["code"] == code_digest()  # which code made it: twins are matched on it
    csv_lines = (out / "log.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,loss,lr,data_s,augment_s,model_s") and len(csv_lines) == 3
    printed = capsys.readouterr().out
    assert "kNN top-1" in printed and "augment" in printed and "model" in printed


@pytest.mark.slow
def test_resume_of_nothing_and_a_subset_larger_than_the_data_say_so(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TINY, "--epochs", "1", "--out", str(out), "--resume", "--train-subset", "99999",
                 "--test-subset", "100"]) == 0
    printed = capsys.readouterr().out
    assert f"--resume: no checkpoint in {out} yet; starting the run" in printed
    assert "note: --train-subset 99999 is more than the 1442 images of digits:train; training on all" in printed
    assert json.loads((out / "result.json").read_text())["images"] == {"train": 1442, "test": 100}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["vicreg", "byol", "barlow", "dino", "mocov3", "supervised"])
def test_other_methods_run(method, tmp_path):
    assert main([*TINY, "--epochs", "1", "--out", str(tmp_path / method), "--method", method,
                 "--policy", "noise[std=0.1]"]) == 0
    assert json.loads((tmp_path / method / "result.json").read_text())["knn_top1"] > 0.1


@pytest.mark.slow
def test_finished_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "done"
    assert main([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    before = (out / "result.json").read_text()
    code, err = run_main([*TINY, "--epochs", "1", "--out", str(out)], capsys)
    assert code == 2 and "holds a finished run" in err and "--overwrite" in err
    assert (out / "result.json").read_text() == before


def test_help_documents_every_flag():
    text = build_parser().format_help()
    for flag in ["--data", "--loader", "--policy", "--method", "--negatives", "--batch-size", "--epochs", "--lr",
                 "--optimizer", "--backbone", "--device", "--precision", "--seed", "--out", "--resume",
                 "--temperature", "--proj-dim", "--weight-decay", "--warmup-epochs", "--lr-scaling", "--ema",
                 "--knn-k"]:
        assert flag in text, flag
    assert len([f for f in TrainConfig.__dataclass_fields__]) <= text.count("(default:") + 2


@pytest.mark.parametrize("args, message", [
    (["--negatives", "zero"], "--negatives: expected 'all' or a positive integer"),
    (["--method", "moco"], "invalid choice: 'moco'"),
    (["--batch-size", "0"], "--batch-size: must be >= 1"),
    (["--lr", "-1"], "--lr: must be > 0"),
    (["--policy", "simclrr"], "unknown policy"),
    (["--data", "/nonexistent"], "--data /nonexistent: does not exist"),
    (["--views", "2x32@0.9:0.1"], "--views: views '2x32@0.9:0.1': crop scale must satisfy 1e-06 <= lo <= hi <= 1"),
    (["--policy", "crop+jitter(nan,0,0,0)"], "--policy: jitter: brightness must be finite, got nan"),
    (["--policy", "noise(std=inf)"], "--policy: noise: std must be finite, got inf:inf"),
    (["--method", "barlow", "--barlow-lambda", "-1"], "--barlow-lambda: must be >= 0, got -1.0"),
    (["--num-workers", "-1"], "--num-workers: must be >= 0, got -1"),
    (["--seed", str(2**70)], "--seed: must be an integer in [0, 2**32)"),
    (["--resume", "--overwrite"], "--resume continues the run in --out and --overwrite replaces it"),
    (["--method", "dino", "--dino.out-dim", "0"], "--dino.out-dim: must be > 0, got 0"),
    (["--method", "dino", "--dino.centering", "maybe"], "argument --dino.centering: invalid bool value: 'maybe'"),
    (["--dino.teacher-temp", "0.07"], "--dino.teacher-temp applies to --method dino only (this run: --method simclr)"),
    (["--backbone", "timm:nope"], "--backbone timm:nope: timm has no model 'nope'"),
    (["--logger", "wandb"], "invalid choice: 'wandb'"),
    (["--aug-engine", "torchvision", "--policy", "noise(std=0.1:0.2)"],
     "torchvision: noise with a std range (GaussianNoise's sigma is fixed)"),
])
def test_bad_flags_give_one_line_errors(args, message, tmp_path, capsys):
    """In process (an uncaught exception would fail the test): the exit status and one line;
    the process-level check that nothing else reaches stderr is test_run_safety's."""
    code, err = run_main([*TINY, "--epochs", "1", "--out", str(tmp_path / "new" / "x"), *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err  # argparse's too: one line
    assert not (tmp_path / "new").exists()  # nothing written before the flags were checked, not even --out's parent


def test_an_unreadable_archive_or_a_missing_path_writes_nothing(tmp_path, capsys):
    (tmp_path / "broken.tar.gz").write_bytes(b"not an archive")
    for data, message in ((tmp_path / "broken.tar.gz", "cannot unpack it"),
                          (tmp_path / "no" / "folder", f"--data {tmp_path / 'no' / 'folder'}: does not exist")):
        code, err = run_main([*TINY, "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "new" / "x")], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
        assert not (tmp_path / "new").exists()


def test_a_usage_error_is_one_line_pointing_to_help(capsys):
    code, err = run_main(["--bogus"], capsys)
    assert code == 2 and err == ("python -m ssl_train: error: unrecognized arguments: --bogus "
                                 "(see python -m ssl_train --help)\n")


@pytest.mark.slow
def test_diverging_run_exits_with_message(tmp_path, capsys):
    code, err = run_main([*TINY, "--epochs", "1", "--out", str(tmp_path / "nan"), "--optimizer", "sgd", "--lr", "1e30"],
                         capsys)
    assert code == 3
    assert "loss became" in err and "try a lower --lr" in err
    assert not (tmp_path / "nan" / "result.json").exists()


@pytest.mark.slow
def test_nan_in_a_later_epoch_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from ssl_train.checkpoint import load_checkpoint
    from ssl_train.loop import NonFiniteLoss, train
    from ssl_train.methods import simclr

    calls = {"n": 0}
    real = simclr.info_nce

    def fails_in_epoch_two(*args, **kwargs):  # 22 steps per epoch at batch 64
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 25 else loss
    monkeypatch.setattr(simclr, "info_nce", fails_in_epoch_two)
    cfg = TrainConfig(data="digits", image_size=16, batch_size=64, proj_hidden=64, proj_dim=32, num_workers=0,
                      knn_k=20, epochs=3, check_every=2, out=str(tmp_path / "nan2"))
    # the loss is read every 2 steps: the NaN of step 4 is reported within the window that holds it
    with pytest.raises(NonFiniteLoss, match="epoch 2 between steps 3 and 4.*last good checkpoint is"):
        train(cfg, progress=False)
    assert load_checkpoint(tmp_path / "nan2" / "checkpoint.pt")["epoch"] == 0
    assert not (tmp_path / "nan2" / "result.json").exists()


@pytest.mark.slow
def test_resume_after_kill_reaches_same_metrics(tmp_path):
    args = [*TINY, "--epochs", "2", "--policy", "crop-gray", "--seed", "5"]
    full = tmp_path / "full"
    # a fresh process, like the killed and resumed ones: no state of this test session leaks in
    assert run_cli([*args, "--out", str(full)]).returncode == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "ssl_train", *args, "--out", str(killed)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ})
    deadline = time.time() + 300
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-epoch 2: the epoch-1 checkpoint has just been written
    proc.wait()
    assert not (killed / "result.json").exists()
    proc = run_cli([*args, "--out", str(killed), "--resume"])
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stdout
    a = json.loads((full / "result.json").read_text())
    b = json.loads((killed / "result.json").read_text())
    assert b["knn_top1"] == a["knn_top1"] and b["linear_top1"] == a["linear_top1"]
    assert [r["loss"] for r in b["epochs"]] == [r["loss"] for r in a["epochs"]]


@pytest.mark.slow
def test_resume_refuses_a_changed_config(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    (out / "result.json").unlink()
    code, err = run_main([*TINY, "--epochs", "1", "--out", str(out), "--resume", "--lr", "0.5"], capsys)
    assert code == 2 and "differs from the checkpoint's in lr" in err


NODE_FAILURE_PLUGIN = """
import os
import signal
from ssl_train import register_method
from ssl_train.methods.simclr import SimCLR


@register_method
class FailingSimCLR(SimCLR):  # SimCLR whose process dies as epoch FAIL_AT_EPOCH begins
    name = "simclr-failing"
    epochs_begun = 0

    def begin_epoch(self, generator):
        FailingSimCLR.epochs_begun += 1
        if FailingSimCLR.epochs_begun == int(os.environ.get("FAIL_AT_EPOCH", "0")):
            os._exit(3)  # like a lost node: no cleanup, no result
        super().begin_epoch(generator)

    def on_step_end(self, backbone, progress):  # rank TERM_RANK gets SIGTERM after its first step
        super().on_step_end(backbone, progress)
        if os.environ.get("RANK") == os.environ.get("TERM_RANK"):
            os.environ.pop("TERM_RANK")
            os.kill(os.getpid(), signal.SIGTERM)
"""


@pytest.mark.slow
def test_two_nodes_of_two_processes_train_from_shards_and_resume(tmp_path):
    """torchrun --nnodes 2 --nproc-per-node 2 on localhost (gloo, 4 ranks): the training split as
    WebDataset shards (4, one per rank). First one process of node 1 gets SIGTERM after its first
    step: all four stop at that step and rank 0 writes a step checkpoint. Resumed there, every
    process dies as epoch 2 begins (after epoch 1's checkpoint: the epoch ends in a barrier); the
    same command with --resume continues at epoch 2 from that checkpoint and writes one result
    and one checkpoint, from rank 0."""
    import csv
    import socket

    from loaders import prepare
    data = tmp_path / "data"
    # small on purpose (4 processes share 2 cores): the 355 test digits as both splits, 4 training shards
    assert prepare.main(["digits:test", str(data / "train"), "--format", "wds", "--shard-size", "89"]) == 0
    assert prepare.main(["digits:test", str(data / "test"), "--format", "wds", "--shard-size", "400"]) == 0
    (tmp_path / "failing.py").write_text(NODE_FAILURE_PLUGIN)
    out = tmp_path / "ddp"

    def two_nodes(*extra, env=()):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank",
                                   str(n), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
                                   str(port), "-m", "ssl_train", *TINY, "--data", str(data), "--epochs", "2",
                                   "--out", str(out), "--device", "cpu", "--plugin", str(tmp_path / "failing.py"),
                                   "--method", "simclr-failing", "--check-every", "1", *extra],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1", **dict(env)})
                 for n in range(2)]
        outputs = [node.communicate(timeout=600) for node in nodes]
        return [node.returncode for node in nodes], outputs

    # a scheduler's SIGTERM to one process of node 1 mid-epoch 1: all four stop at that step
    codes, outputs = two_nodes(env={"TERM_RANK": "3"})
    assert codes[0] != 0 and codes[1] != 0 and not (out / "result.json").exists()
    assert "stopped by SIGTERM at epoch 1, step 1" in outputs[0][1], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (saved["epoch"], saved["step"], len(saved["in_epoch"]["ranks"])) == (-1, 1, 4)
    codes, outputs = two_nodes("--resume", env={"FAIL_AT_EPOCH": "2"})  # resumed mid-epoch 1, then a node dies
    assert codes[0] != 0 and codes[1] != 0 and not (out / "result.json").exists()
    assert "at epoch 1/2, step 2" in outputs[0][0]
    with open(out / "log.csv") as f:
        before = list(csv.DictReader(f))
    assert [row["epoch"] for row in before] == ["1"] and (out / "checkpoint.pt").is_file()

    codes, outputs = two_nodes("--resume")
    assert codes == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    assert "resuming" in outputs[0][0] + outputs[1][0]
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 4 and result["knn_top1"] > 0.1
    assert [row["epoch"] for row in result["epochs"]] == [1, 2]
    assert result["epochs"][0]["loss"] == pytest.approx(float(before[0]["loss"]))  # epoch 1 kept, not retrained
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["checkpoint.pt", "config.json", "log.csv", "result.json"]
    assert sum(stdout.count("wrote") for stdout, _ in outputs) == 1  # results written once, by rank 0


@pytest.mark.slow
def test_offline_linear_eval_of_a_saved_run(tmp_path, capsys):
    from ssl_train import linear_eval
    out = tmp_path / "lin"
    assert main([*TINY, "--epochs", "1", "--out", str(out), "--train-subset", "500"]) == 0
    assert json.loads((out / "result.json").read_text())["config"]["train_subset"] == 500
    assert linear_eval.main(["--run", str(out), "--epochs", "50"]) == 0
    result = json.loads((out / "linear_eval.json").read_text())
    assert result["train_images"] == 500 and result["test_images"] == 355
    assert 0.3 < result["linear_eval_top1"] <= 1.0  # digits: far above the 10% of chance
    assert linear_eval.main(["--run", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        linear_eval.main(["--run", str(out), "--lr", "nan"])
    assert refused.value.code == 2 and "--lr: must be a finite number > 0, got nan" in capsys.readouterr().err
    # a checkpoint whose config was edited (data null) or whose data has moved: one line each
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    for data, message in ((None, "its config is not a valid ssl_train config (--data: expected a non-empty string"),
                          (str(tmp_path / "moved"), f"--data {tmp_path / 'moved'}: does not exist")):
        edited = tmp_path / f"edited-{data is None}"
        edited.mkdir()
        torch.save({**state, "config": {**state["config"], "data": data}}, edited / "checkpoint.pt")
        assert linear_eval.main(["--run", str(edited), "--epochs", "5"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["kornia", "torchvision"])
def test_other_aug_engines_train_and_are_named_in_the_time_account(engine, tmp_path):
    out = tmp_path / engine
    assert main([*TINY, "--epochs", "1", "--out", str(out), "--policy", "simclr-cifar", "--aug-engine", engine]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["time"]["aug_engine"] == engine and result["config"]["aug_engine"] == engine
    assert result["time"]["augment_s"] > 0 and result["time"]["augment_ops_s"] == {}  # per-op: augpipe only
    assert 0.1 < result["knn_top1"] <= 1


@pytest.mark.slow
def test_pretraining_on_an_unlabeled_folder(tmp_path, capsys):
    """train/ is a flat folder of images, test/ is labelled: the run pretrains without the online
    probe and votes kNN within the labelled test split; an unlabeled test split is refused."""
    import loaders
    digits = Path(loaders.resolve_source("digits"))
    (tmp_path / "data" / "train").mkdir(parents=True)
    for i, f in enumerate(sorted(digits.rglob("*.png"))[:400]):
        os.symlink(f, tmp_path / "data" / "train" / f"{i}.png")
    os.symlink(loaders.resolve_source("digits:test"), tmp_path / "data" / "test")
    out = tmp_path / "run"
    assert main([*TINY, "--data", str(tmp_path / "data"), "--epochs", "1", "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["linear_top1"] is None and 0.3 < result["knn_top1"] <= 1 and result["knn_top1_random_init"] > 0.3
    assert "no online probe (unlabeled training split)" in capsys.readouterr().out
    (tmp_path / "data" / "test").unlink()
    os.symlink(tmp_path / "data" / "train", tmp_path / "data" / "test")
    code, err = run_main([*TINY, "--data", str(tmp_path / "data"), "--epochs", "1", "--out", str(tmp_path / "x")],
                         capsys)
    assert code == 2 and "evaluation needs a labelled test split" in err
