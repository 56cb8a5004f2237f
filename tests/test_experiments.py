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


def test_a_failed_run_is_recorded_the_others_go_on_and_report_survives_bad_files(tmp_path, monkeypatch, capsys):
    from ssl_train import loop
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "scales.json").write_text(json.dumps({"cpu": {"epochs": 1}}))
    (configs / "two.json").write_text(json.dumps({"claim": "c", "runs": [{"id": "a"}, {"id": "b"}]}))
    (configs / "cost-vs-accuracy.json").write_text(json.dumps({"claim": "pareto", "uses": ["two"], "runs": []}))
    monkeypatch.setattr(runner, "CONFIGS", configs)
    results = tmp_path / "results"
    fake = {"knn_top1": 0.5, "linear_top1": 0.4, "knn_top1_random_init": 0.3, "time": {
        "total_s": 1.0, "augment_ms_per_image": 0.1, "data_s": 0.1, "augment_s": 0.1, "model_s": 0.8}}

    def fake_train(cfg, resume=False, progress=False):
        if cfg.out.endswith("a-s0") and not (tmp_path / "fixed").exists():
            raise ValueError("boom\nsecond line")
        result = {**fake, "config": cfg.to_dict()}
        (tmp_path / "results" / "two" / cfg.out.split("/")[-1]).mkdir(parents=True, exist_ok=True)
        (runner.Path(cfg.out) / "result.json").write_text(json.dumps(result))
        return result
    monkeypatch.setattr(loop, "train", fake_train)
    done = runner.run_experiment("two", "digits", "cpu", [0], results, log=lambda s: None)
    assert len(done) == 1  # b ran although a failed before it
    assert (results / "two" / "a-s0" / "failed.txt").read_text() == "ValueError: boom second line\n"
    (tmp_path / "fixed").touch()
    assert len(runner.run_experiment("two", "digits", "cpu", [0], results, log=lambda s: None)) == 1
    assert not (results / "two" / "a-s0" / "failed.txt").exists()  # the rerun cleared the old failure
    # one more run whose result.json is corrupt, and one with null kNN: named, skipped, report still written
    for name, text in (("c-s0", "{not json"), ("d-s0", json.dumps({**fake, "knn_top1": None, "config": {}}))):
        (results / "two" / name).mkdir()
        (results / "two" / name / "result.json").write_text(text)
    (results / "two" / "b-s0" / "failed.txt").write_text("stale\n")  # must not list b twice
    assert main(["report", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "c-s0/result.json: unreadable" in out and "d-s0/result.json: missing or invalid knn_top1" in out
    text = (results / "REPORT.md").read_text()
    assert text.count("| a-s0 |") == 1 and text.count("| b-s0 |") == 1 and "c-s0" not in text
