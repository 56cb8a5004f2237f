"""`python -m ssl_train --config FILE`: a YAML or JSON run config, flags overriding it, the
resolved config written into the run, which repeats the run; bad files refused in one line."""
import json

import pytest
import yaml

from ssl_train.cli import main

TINY = {"data": "digits", "image_size": 16, "batch_size": 64, "proj_hidden": 64, "proj_dim": 32, "num_workers": 0,
        "knn_k": 20, "policy": "crop", "epochs": 2, "train_subset": 512, "method": "simclr", "negatives": "8"}


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "augpipe-cache"))


def run(args, capsys) -> tuple[int, str]:
    try:
        code = main([*args, "--no-progress"])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_a_saved_config_repeats_the_run_and_flags_override_the_file(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**TINY, "batch-size": 64}))  # dashes or underscores alike
    first = tmp_path / "first"
    assert run(["--config", str(config), "--epochs", "1", "--out", str(first)], capsys)[0] == 0
    saved = yaml.safe_load((first / "config.yaml").read_text())
    assert saved == json.loads((first / "config.json").read_text())
    assert saved["epochs"] == 1 and saved["image_size"] == 16 and saved["out"] == str(first)  # the flag won
    again = tmp_path / "again"
    assert run(["--config", str(first / "config.yaml"), "--out", str(again)], capsys)[0] == 0
    a, b = (json.loads((d / "result.json").read_text()) for d in (first, again))
    assert a["knn_top1"] == b["knn_top1"] and a["knn_top1_random_init"] == b["knn_top1_random_init"]
    assert (first / "log.csv").read_text().splitlines()[1].split(",")[:3] == \
        (again / "log.csv").read_text().splitlines()[1].split(",")[:3]  # epoch, loss, lr: the same run
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps({**TINY, "epochs": 1}))
    third = tmp_path / "third"
    assert run(["--config", str(as_json), "--out", str(third)], capsys)[0] == 0
    assert not (third / "config.yaml").exists() and json.loads((third / "config.json").read_text())["epochs"] == 1


@pytest.mark.parametrize("text, name, message", [
    ("epochs: 1\nbatchsize: 64\n", "a.yaml", "unknown key 'batchsize'; valid keys: data, "),
    ("epochs: one\n", "b.yaml", "epochs must be int, got 'one'"),
    ("lr: true\n", "c.yaml", "lr must be int or float, got True"),
    ("- epochs\n", "d.yaml", "expected a mapping of option: value, got list"),
    ("epochs: [1\n", "e.yaml", "not valid YAML"),
    ("{\"epochs\": 1,}", "f.json", "not valid JSON"),
    ("epochs = 1\n", "g.toml", "expected a .yaml, .yml or .json file"),
])
def test_a_bad_config_file_is_one_line_naming_it(text, name, message, tmp_path, capsys):
    path = tmp_path / name
    path.write_text(text)
    code, err = run(["--config", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and f"--config {path}: {message}" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "out").exists()


def test_a_missing_config_file_is_named(tmp_path, capsys):
    code, err = run(["--config", str(tmp_path / "none.yaml")], capsys)
    assert code == 2 and f"--config {tmp_path / 'none.yaml'}: no such file" in err


@pytest.mark.slow
def test_a_methods_options_round_trip_through_the_config_file(tmp_path, capsys):
    """`method_options` in the file, a --dino.* flag over it: both in the saved config, which
    repeats the run; an unknown option in the file is refused naming it."""
    config = tmp_path / "dino.yaml"
    config.write_text(yaml.safe_dump({**TINY, "negatives": "all", "method": "dino", "epochs": 1,
                                      "method_options": {"out_dim": 64, "teacher_temp": 0.05}}))
    first = tmp_path / "first"
    assert run(["--config", str(config), "--dino.teacher-temp", "0.06", "--out", str(first)], capsys)[0] == 0
    saved = yaml.safe_load((first / "config.yaml").read_text())["method_options"]
    assert saved["out_dim"] == 64 and saved["teacher_temp"] == 0.06 and saved["student_temp"] == 0.1  # all of them
    again = tmp_path / "again"
    assert run(["--config", str(first / "config.yaml"), "--out", str(again)], capsys)[0] == 0
    a, b = (json.loads((d / "result.json").read_text()) for d in (first, again))
    assert a["knn_top1"] == b["knn_top1"] and a["epochs"][0]["loss"] == b["epochs"][0]["loss"]
    assert a["config"]["method_options"] == saved
    config.write_text(yaml.safe_dump({**TINY, "method": "dino", "negatives": "all", "method_options": {"bogus": 1}}))
    code, err = run(["--config", str(config), "--out", str(tmp_path / "bad")], capsys)
    assert code == 2 and "--dino.bogus: --method dino has no option 'bogus' (its options: --dino.out-dim," in err
    assert not (tmp_path / "bad").exists()
