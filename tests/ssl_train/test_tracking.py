"""`--logger tensorboard`: the run's scalars, read back with TensorBoard's own reader, equal what
log.csv and result.json say."""
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ssl_train.cli import main
from ssl_train.tracking import EPOCH_TAGS

TINY = ["--data", "digits", "--image-size", "16", "--batch-size", "128", "--proj-hidden", "64", "--proj-dim", "32",
        "--num-workers", "0", "--no-progress", "--knn-k", "20", "--policy", "crop", "--epochs", "2"]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "augpipe-cache"))


@pytest.mark.slow
def test_tensorboard_events_hold_the_step_group_and_epoch_scalars(tmp_path):
    out = tmp_path / "run"
    assert main([*TINY, "--logger", "tensorboard", "--check-every", "4", "--out", str(out)]) == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {"train/loss", "train/lr", "time/augment_ms_per_image", *EPOCH_TAGS.values()}
    result = json.loads((out / "result.json").read_text())
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in tags}
    for key, tag in EPOCH_TAGS.items():  # float32 events: equal to float32 precision
        assert [s for s, _ in scalars[tag]] == [row["epoch"] for row in result["epochs"]], tag
        assert [v for _, v in scalars[tag]] == pytest.approx([row[key] for row in result["epochs"]], rel=1e-6), tag
    # step groups: every 4th step and each epoch's last, against the global optimiser step
    per_epoch = result["images"]["train"] // 128
    expected = [e * per_epoch + s for e in range(2) for s in range(1, per_epoch + 1) if s % 4 == 0 or s == per_epoch]
    assert [s for s, _ in scalars["train/loss"]] == expected == [s for s, _ in scalars["train/lr"]]
    assert all(0 < v < 20 for _, v in scalars["train/loss"]) and all(v > 0 for _, v in scalars["train/lr"])
    # the last group's mean and the epoch's mean are of the same loss; the lr is the schedule's
    assert scalars["train/lr"][-1][1] == pytest.approx(result["epochs"][-1]["lr"], rel=1e-6)
    ms = scalars["time/augment_ms_per_image"]
    images = per_epoch * 128
    assert [s for s, _ in ms] == [1, 2]
    assert [v for _, v in ms] == pytest.approx([1000 * row["augment_s"] / images for row in result["epochs"]], rel=1e-6)


@pytest.mark.slow
def test_without_the_logger_nothing_is_written(tmp_path):
    out = tmp_path / "run"
    assert main([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    assert not (out / "tensorboard").exists() and (out / "log.csv").exists()
