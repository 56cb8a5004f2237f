"""experiments: plans from configs, resumable runs, the report."""
import json

import pytest

from experiments import report as report_module
from experiments import runner
from experiments.__main__ import main


def test_every_shipped_experiment_plans_valid_configs(tmp_path):
    for name in runner.list_experiments():
        for scale in ("cpu", "gpu"):
            configs = runner.plan(name, "digits", scale, [0, 1], tmp_path)
            experiment = runner.load_experiment(name)
            runs = experiment.get(f"{scale}_runs", experiment["runs"])
            assert len(configs) == 2 * len(runs)
            assert len({c.out for c in configs}) == len(configs)
    negatives = runner.plan("negatives", "digits", "cpu", [3], tmp_path)
    assert [c.negatives for c in negatives] == ["all", "16", "1"] and {c.seed for c in negatives} == {3}


def test_unknown_names_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown experiment 'colour'; valid: batch-size"):
        runner.plan("colour", "digits", "cpu", [0], tmp_path)
    assert main(["run", "policies", "--data", str(tmp_path / "none.tar.gz")]) == 2
    assert "no such archive" in capsys.readouterr().err


def test_run_skip_and_report_end_to_end(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "scales.json").write_text(json.dumps({"cpu": {
        "image_size": 16, "batch_size": 64, "epochs": 1, "proj_hidden": 32, "proj_dim": 16, "num_workers": 0,
        "knn_k": 20, "train_subset": 640}}))
    (configs / "tiny.json").write_text(json.dumps({"claim": "noise is enough", "runs": [
        {"id": "noise", "policy": "noise[std=0.1]"}, {"id": "k1", "negatives": "1", "policy": "crop"}]}))
    (configs / "cost-vs-accuracy.json").write_text(json.dumps({"claim": "pareto", "uses": ["tiny"], "runs": []}))
    monkeypatch.setattr(runner, "CONFIGS", configs)
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "results"
    done = runner.run_experiment("tiny", "digits", "cpu", [0], results, log=lambda s: None)
    assert len(done) == 2 and all(r["knn_top1"] > 0.1 for r in done)
    lines = []
    assert runner.run_experiment("tiny", "digits", "cpu", [0], results, log=lines.append) == []
    assert all(line.startswith("skip") for line in lines)
    path, pngs = report_module.report(results)
    text = path.read_text()
    assert "## tiny" in text and "noise is enough" in text and "| noise-s0 | noise[std=0.1]" in text
    assert "| k1-s0 | crop | 1 |" in text
    assert {p.name for p in pngs} == {"cost-vs-accuracy.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
