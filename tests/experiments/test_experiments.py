"""experiments: plans from configs, resumable runs, the report."""
import json
from pathlib import Path

import pytest

from experiments import report as report_module
from experiments import runner
from experiments.__main__ import main


def test_every_shipped_experiment_plans_valid_configs(tmp_path):
    for name in runner.list_experiments():
        for scale in ("smoke", "cpu", "gpu"):
            configs = runner.plan(name, "digits", scale, [0, 1], tmp_path)
            experiment = runner.load_experiment(name)
            runs = runner.scale_runs(experiment, scale)
            assert len(configs) == 2 * len(runs) and len(runs) <= len(experiment.get(f"{scale}_runs", experiment["runs"]))
            assert len({c.out for c in configs}) == len(configs)
    negatives = runner.plan("negatives", "digits", "cpu", [3], tmp_path)
    assert [c.negatives for c in negatives] == ["all", "16", "1"] and {c.seed for c in negatives} == {3}
    # the published scale runs every run at 3 seeds by default, the small-image recipe at 32 px
    policies = runner.plan("policies", "digits", "cpu", None, tmp_path)
    assert {c.seed for c in policies} == {0, 1, 2} and policies[0].policy == "simclr-cifar"


def test_steps_become_equal_step_epochs_and_smoke_caps_budgets(tmp_path):
    cpu = runner.plan("batch-size-steps", "digits", "cpu", [0], tmp_path)
    steps = {c.batch_size: c.epochs * (c.train_subset // c.batch_size) for c in cpu}
    assert sorted(steps) == [64, 256, 1024] and max(steps.values()) - min(steps.values()) <= 0.02 * 156
    smoke = runner.plan("batch-size-steps", "digits", "smoke", None, tmp_path)
    assert {c.seed for c in smoke} == {0} and all(c.train_subset <= 4096 for c in smoke)
    assert {c.batch_size: c.epochs * (c.train_subset // c.batch_size) for c in smoke} == {64: 64, 256: 64, 1024: 64}
    assert {c.lr for c in smoke} == {0.002}  # smoke_ids: one lr of the grid
    reference = runner.plan("reference", "digits", "smoke", [0], tmp_path)
    assert all(c.train_subset == 4096 and c.epochs == 5 for c in reference)  # 20k images, 6 epochs capped


def test_runs_flag_picks_run_ids_and_names_unknown_ones(tmp_path, capsys):
    picked = runner.plan("batch-size-steps", "digits", "cpu", [1], tmp_path, only=["b64-lr2e-3", "b1024-lr4e-3"])
    assert [(c.batch_size, c.lr, c.seed) for c in picked] == [(64, 0.002, 1), (1024, 0.004, 1)]
    assert main(["run", "negatives", "--data", "digits", "--runs", "k1,k2", "--dry-run", "--results", str(tmp_path)]) == 2
    assert "--runs: k2 not a run of negatives at scale cpu; valid: all, k16, k1" in capsys.readouterr().err
    assert main(["run", "negatives", "--data", "digits", "--runs", "k1", "--dry-run", "--results", str(tmp_path)]) == 0
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("run ")] == [
        f"run {tmp_path}/negatives/k1-s{seed}: policy=simclr-cifar method=simclr negatives=1 batch=256 lr=0.002 "
        f"(none) epochs=5 loader=torch" for seed in (0, 1, 2)]


def test_smoke_ids_pick_runs_and_unknown_ids_are_refused():
    policies = runner.load_experiment("policies")
    picked = [run["id"] for run in runner.scale_runs(policies, "smoke")]
    assert picked == [run["id"] for run in policies["runs"] if run["id"] in policies["smoke_ids"]] and len(picked) == 4
    assert runner.scale_runs(policies, "cpu") == policies["runs"]
    with pytest.raises(ValueError, match="smoke_ids names runs that do not exist: nope"):
        runner.scale_runs({**policies, "smoke_ids": ["none", "nope"]}, "smoke")


def test_run_trains_into_a_fresh_folder_unless_told(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr("experiments.__main__.run_experiment", lambda name, data, scale, seeds, results, *a, **k: seen.append((seeds, results)))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "policies", "--data", "digits", "--scale", "smoke"]) == 0
    seeds, results = seen[-1]
    assert seeds is None and results.parent == runner.FRESH and results != runner.RESULTS
    assert main(["run", "policies", "--data", "digits", "--seeds", "4,5", "--results", str(tmp_path / "r")]) == 0
    assert seen[-1] == ([4, 5], tmp_path / "r")


def test_report_statistics_and_verdicts():
    from experiments.report import above_floor, compare, group, run_id
    assert run_id("noise-0.1-s12") == "noise-0.1" and run_id("crop+noise-0.05-s0") == "crop+noise-0.05"

    def rows(knn, floor):
        return [{"run": f"x-s{i}", "knn_top1": k, "knn_top1_random_init": f} for i, (k, f) in enumerate(zip(knn, floor))]
    assert above_floor(rows([0.45, 0.46, 0.44], [0.35, 0.36, 0.34])).endswith("**learns**")
    assert above_floor(rows([0.36, 0.34, 0.37], [0.35, 0.36, 0.34])).endswith("within seed noise")
    assert above_floor(rows([0.5], [0.3])) == "n = 1"
    # unpaired (no shared seeds): 2 pooled sd
    assert compare({0: 0.50, 1: 0.51, 2: 0.52}, {3: 0.40, 4: 0.41, 5: 0.42}) == "higher"
    assert compare({0: 0.40, 1: 0.41, 2: 0.42}, {3: 0.50, 4: 0.51, 5: 0.52}) == "lower"
    assert compare({0: 0.50, 1: 0.45, 2: 0.55}, {3: 0.48, 4: 0.53, 5: 0.43}) == "within seed noise"
    assert compare({0: 0.5}, {0: 0.4}) == "n = 1"
    # paired over shared seeds: a gain the same on every seed is real though the seeds' spread is wider
    t01, t02 = {0: 0.528, 1: 0.517, 2: 0.536}, {0: 0.520, 1: 0.509, 2: 0.523}
    assert compare(t01, t02) == "higher (paired)" and compare(t02, t01) == "lower (paired)"
    assert compare(dict(zip([0, 1, 2], t01.values())), {3: 0.520, 4: 0.509, 5: 0.523}) == "within seed noise"
    assert compare({0: 0.50, 1: 0.45, 2: 0.55}, {0: 0.46, 1: 0.49, 2: 0.50}) == "within seed noise (paired)"
    assert list(group(rows([0.4, 0.5], [0.3, 0.3]) + [{"run": "y-s0", "failed": "boom"}])) == ["x"]


def test_unknown_names_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown experiment 'colour'; valid: batch-size"):
        runner.plan("colour", "digits", "cpu", [0], tmp_path)
    assert main(["run", "policies", "--data", str(tmp_path / "none.tar.gz")]) == 2
    assert "no such archive" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--data", "{tmp}/nothing"], "--data {tmp}/nothing: does not exist"),  # checked even for --dry-run
    (["--seeds", ""], "--seeds: expected comma-separated integers >= 0, got ''"),
    (["--seeds", "1,-2"], "--seeds: expected comma-separated integers >= 0, got '1,-2'"),
    (["--results", "{tmp}/file"], "--results {tmp}/file: is a file; --results names a folder"),
    (["--results", "{tmp}/file/under"], "--results {tmp}/file/under: {tmp}/file is a file"),
])
def test_bad_run_flags_are_one_line_errors_before_anything_is_planned(args, message, tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    argv = ["run", "policies", "--data", "digits", "--dry-run", *[a.format(tmp=tmp_path) for a in args]]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2 and message.format(tmp=tmp_path) in captured.err.strip().splitlines()[-1]
    assert "Traceback" not in captured.err and "run " not in captured.out  # nothing planned


@pytest.mark.slow
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
    assert "## tiny" in text and "noise is enough" in text and "| noise | 1 | noise[std=0.1]" in text
    assert "| k1 | 1 | crop | 1 |" in text
    assert {p.name for p in pngs} == {"cost-vs-accuracy.png", "tiny.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_a_failed_run_is_recorded_the_others_go_on_and_report_survives_bad_files(tmp_path, monkeypatch, capsys):
    from ssl_train import loop
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "scales.json").write_text(json.dumps({"cpu": {"epochs": 1}}))
    (configs / "two.json").write_text(json.dumps({"claim": "c", "runs": [{"id": "a", "lr": 0.01}, {"id": "b"}]}))
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
    for name, text in (("c-s0", "{not json"), ("d-s0", json.dumps({**fake, "knn_top1": None, "config": {}})),
                       ("e-s0", json.dumps({**fake, "knn_top1": float("nan"), "config": {}}))):
        (results / "two" / name).mkdir()
        (results / "two" / name / "result.json").write_text(text)
    (results / "two" / "b-s0" / "failed.txt").write_text("stale\n")  # must not list b twice
    assert main(["report", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "c-s0/result.json: unreadable" in out and "d-s0/result.json: missing or invalid knn_top1" in out
    assert "e-s0/result.json: non-finite knn_top1=nan" in out  # a NaN is named, never a bold best value
    text = (results / "REPORT.md").read_text()
    assert text.count("| a | 1 |") == 1 and text.count("| b | 1 |") == 1 and "c-s0" not in text and "| e |" not in text
    # a results folder that is not there is an error, and nothing is created
    for missing in (tmp_path / "nowhere", results / "REPORT.md"):  # absent, and a file
        assert main(["report", "--results", str(missing)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: --results {missing}: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()


def test_a_finished_twin_is_reused_not_retrained(tmp_path, monkeypatch):
    """A run whose exact config and seed finished under another experiment takes that result (the
    same config reproduces bit for bit), even one written before a setting existed (its default);
    a run differing in anything trains."""
    from ssl_train import loop
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "scales.json").write_text(json.dumps({"cpu": {"epochs": 1}}))
    (configs / "first.json").write_text(json.dumps({"claim": "c", "runs": [{"id": "x", "policy": "noise"}]}))
    (configs / "second.json").write_text(json.dumps({"claim": "c", "runs": [
        {"id": "same", "policy": "noise"}, {"id": "other", "policy": "noise", "lr": 0.01}]}))
    monkeypatch.setattr(runner, "CONFIGS", configs)
    trained = []

    def fake_train(cfg, resume=False, progress=False):
        trained.append(runner.Path(cfg.out).name)
        older = {k: v for k, v in cfg.to_dict().items() if k != "check_every"}  # as written before it existed
        result = {"knn_top1": 0.5 + len(trained) / 100, "config": older}
        runner.Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (runner.Path(cfg.out) / "result.json").write_text(json.dumps(result))
        (runner.Path(cfg.out) / "log.csv").write_text("epoch,loss\n1,2.0\n")
        return result
    monkeypatch.setattr(loop, "train", fake_train)
    results, lines = tmp_path / "results", []
    runner.run_experiment("first", "digits", "cpu", [0], results, log=lines.append)
    runner.run_experiment("second", "digits", "cpu", [0, 1], results, log=lines.append)
    assert trained == ["x-s0", "same-s1", "other-s0", "other-s1"]  # same-s0 is x-s0's twin
    reused = json.loads((results / "second" / "same-s0" / "result.json").read_text())
    assert reused["knn_top1"] == 0.51 and reused["reused_from"] == str(results / "first" / "x-s0")
    assert reused["config"]["out"] == str(results / "second" / "same-s0")
    assert (results / "second" / "same-s0" / "log.csv").read_text() == "epoch,loss\n1,2.0\n"
    assert any(line.startswith(f"reuse {results / 'first' / 'x-s0'}") for line in lines)


def test_lr_is_chosen_on_the_tuning_seed_and_reported_over_all_seeds():
    from experiments.report import _lr_choice, group

    def row(rid, batch, lr, seed, knn):
        return {"run": f"{rid}-s{seed}", "knn_top1": knn, "knn_top1_random_init": 0.3,
                "config": {"batch_size": batch, "lr": lr, "seed": seed}}
    runs = [row("b64-a", 64, 0.001, 0, 0.43), row("b64-a", 64, 0.001, 1, 0.38), row("b64-b", 64, 0.002, 0, 0.42),
            row("b256-a", 256, 0.001, 0, 0.45), row("b256-b", 256, 0.002, 0, 0.46), row("b256-b", 256, 0.002, 1, 0.47)]
    lines = _lr_choice(group(runs))
    # b64: 1e-3 wins on seed 0 although its mean over seeds (0.405) is below 2e-3's single 0.42
    assert lines[2] == "| 64 | 0 | 0.001: 0.430, 0.002: 0.420 | b64-a | 0.405 ± 0.035 (2) |"
    assert lines[3] == "| 256 | 0 | 0.001: 0.450, 0.002: 0.460 | b256-b | 0.465 ± 0.007 (2) |"


def test_a_finished_run_with_another_config_is_refused_before_anything_trains(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "scales.json").write_text(json.dumps({"cpu": {"image_size": 16, "epochs": 1, "num_workers": 0}}))
    experiment = {"claim": "c", "runs": [{"id": "noise", "policy": "noise[std=0.1]"}, {"id": "crop", "policy": "crop"}]}
    (configs / "tiny.json").write_text(json.dumps(experiment))
    monkeypatch.setattr(runner, "CONFIGS", configs)
    results = tmp_path / "results"
    for cfg in runner.plan("tiny", "digits", "cpu", [0], results):  # finished runs, written by an older version
        have = {k: v for k, v in cfg.to_dict().items() if k != "aug_engine"}  # a setting it did not know yet
        (results / "tiny" / Path(cfg.out).name).mkdir(parents=True)
        (Path(cfg.out) / "result.json").write_text(json.dumps({"config": {**have, "data": "/elsewhere/digits"}}))
    lines = []
    assert runner.run_experiment("tiny", "digits", "cpu", [0], results, log=lines.append) == []
    assert len(lines) == 2 and all(line.startswith("skip") for line in lines)  # the same runs: skipped

    experiment["runs"][0]["policy"] = "noise[std=0.2]"
    experiment["runs"].append({"id": "new", "policy": "none"})
    (configs / "tiny.json").write_text(json.dumps(experiment))
    with pytest.raises(ValueError, match=r"1 finished run\(s\) of tiny .*noise-s0 \(policy: 'noise\[std=0.1\]' -> "
                                         r"'noise\[std=0.2\]'\); move them aside"):
        runner.run_experiment("tiny", "digits", "cpu", [0], results, log=lines.append)
    assert not (results / "tiny" / "new-s0").exists()  # refused before the first run trained


def test_a_twin_made_by_other_code_is_trained_again(tmp_path, monkeypatch):
    from ssl_train import loop, provenance
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "scales.json").write_text(json.dumps({"cpu": {"epochs": 1}}))
    for name in ("first", "second", "third"):
        (configs / f"{name}.json").write_text(json.dumps({"claim": "c", "runs": [{"id": "x", "policy": "noise"}]}))
    monkeypatch.setattr(runner, "CONFIGS", configs)
    trained = []

    def fake_train(cfg, resume=False, progress=False):
        trained.append(str(Path(cfg.out).relative_to(results)))
        Path(cfg.out).mkdir(parents=True)
        result = {"knn_top1": 0.5, "config": cfg.to_dict(), "versions": {"code": provenance.code_digest()}}
        (Path(cfg.out) / "result.json").write_text(json.dumps(result))
        return result
    monkeypatch.setattr(loop, "train", fake_train)
    results = tmp_path / "results"
    monkeypatch.setattr(provenance, "code_digest", lambda: "aaaa")
    runner.run_experiment("first", "digits", "cpu", [0], results, log=lambda s: None)
    runner.run_experiment("second", "digits", "cpu", [0], results, log=lambda s: None)  # same code: a twin
    monkeypatch.setattr(provenance, "code_digest", lambda: "bbbb")
    runner.run_experiment("third", "digits", "cpu", [0], results, log=lambda s: None)  # other code: trains
    assert trained == ["first/x-s0", "third/x-s0"]


def test_the_source_digest_follows_every_byte_and_name_of_the_code(tmp_path):
    from ssl_train.provenance import source_digest
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    (pkg / "notes.txt").write_text("not code")
    before = source_digest([pkg])
    (pkg / "notes.txt").write_text("still not code")
    assert source_digest([pkg]) == before
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    assert source_digest([pkg]) != before
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    assert source_digest([pkg]) == before
    (pkg / "sub" / "b.py").rename(pkg / "sub" / "c.py")
    assert source_digest([pkg]) != before


def test_an_unreadable_finished_result_is_named(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "scales.json").write_text(json.dumps({"cpu": {"epochs": 1}}))
    (configs / "tiny.json").write_text(json.dumps({"claim": "c", "runs": [{"id": "x", "policy": "noise"}]}))
    monkeypatch.setattr(runner, "CONFIGS", configs)
    broken = tmp_path / "results" / "tiny" / "x-s0"
    broken.mkdir(parents=True)
    (broken / "result.json").write_text("{half")
    with pytest.raises(ValueError, match=r"x-s0/result.json: not a result this runner wrote"):
        runner.run_experiment("tiny", "digits", "cpu", [0], tmp_path / "results", log=lambda s: None)
    # a hand-edited config (data null): named, here and as a candidate twin of another run
    (broken / "result.json").write_text(json.dumps({"config": {"data": None, "policy": "noise"}}))
    with pytest.raises(ValueError, match=r"x-s0/result.json: not a result this runner wrote \(its config's data is None"):
        runner.run_experiment("tiny", "digits", "cpu", [0], tmp_path / "results", log=lambda s: None)
    cfg = runner.TrainConfig(data="digits", out=str(tmp_path / "results" / "tiny" / "y-s0"))
    assert runner.finished_twin(cfg, tmp_path / "results") is None


def test_a_stop_signal_stops_the_experiment_and_names_its_resume_command(tmp_path, monkeypatch, capsys):
    """A preempted run is not a failed run: the experiment stops there (no failed.txt, no later
    run started) and says how to go on, with the results folder it was writing."""
    from ssl_train import loop
    from ssl_train.preempt import Preempted
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "scales.json").write_text(json.dumps({"cpu": {"epochs": 1}}))
    (configs / "two.json").write_text(json.dumps({"claim": "c", "runs": [{"id": "a"}, {"id": "b"}]}))
    monkeypatch.setattr(runner, "CONFIGS", configs)
    started = []

    def preempted_train(cfg, resume=False, progress=False):
        started.append(cfg.out)
        raise Preempted(f"stopped by SIGTERM at epoch 1, step 3, checkpoint {cfg.out}/checkpoint.pt", 15)
    monkeypatch.setattr(loop, "train", preempted_train)
    monkeypatch.setattr("experiments.__main__.fresh_results", lambda: tmp_path / "fresh")
    assert main(["run", "two", "--data", "digits", "--seeds", "0"]) == 143
    assert len(started) == 1 and not list((tmp_path / "fresh").rglob("failed.txt"))
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f"; resume with: python -m experiments run two --data digits --seeds 0 --results {tmp_path / 'fresh'}")
