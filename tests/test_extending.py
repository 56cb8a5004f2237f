"""The Extending guide's example (docs/guide/extending.md), run as a user would: a module outside the repository registers
an op and a method with the documented API, and they work everywhere a built-in one does."""
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import augpipe
from _augpipe_shared.plugins import import_plugin
from augpipe import Op, build_policy, register_op
from augpipe.diagnostics import count_ops
from augpipe.interop.engines import Unsupported, build
from tests.tolerance import assert_float_close

ROOT = Path(__file__).resolve().parents[1]


def readme_plugin() -> str:
    """The plugin block of the Extending guide (docs/guide/extending.md)."""
    text = (ROOT / "docs" / "guide" / "extending.md").read_text()
    return re.search(r"```\{code-block\} python\n:caption:[^\n]*\n\n(# my_plugin\.py\n.*?)```", text, re.S).group(1)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user_code")  # outside the repository
    path = folder / "my_plugin.py"
    path.write_text(readme_plugin())
    import_plugin(str(path))
    return path


@pytest.fixture
def images():
    return torch.randint(0, 256, (12, 3, 20, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_the_example_registers_its_op_and_its_method(plugin):
    from ssl_train import METHODS
    assert augpipe.OPS["channel_shuffle"].__module__ == "my_plugin"
    assert METHODS["align_uniform"].__module__ == "my_plugin"


def test_the_op_does_what_its_parameters_say_under_both_gatings(plugin, images):
    views = {}
    for gating in ("subset", "blend"):
        policy = build_policy("channel_shuffle(p=0.5)", size=20, views=2, gating=gating, compile=False)
        views[gating], params = policy(images, generator=torch.Generator().manual_seed(3), return_params=True)
    for view, ps in zip(views["subset"], params):
        shuffle = next(p for p in ps if p["op"] == "channel_shuffle")
        assert set(shuffle) == {"op", "apply", "order"}
        assert 0 < shuffle["apply"].sum() < len(images)  # p=0.5: some rows of each kind
        for x, y, applied, order in zip(images.float() / 255, view, shuffle["apply"], shuffle["order"]):
            torch.testing.assert_close(y, x[order] if applied else x, atol=0, rtol=0)
    for a, b in zip(views["subset"], views["blend"]):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_a_preset_of_the_users_op_takes_overrides(plugin, images):
    augpipe.register_preset("test_shuffled_crops", "crop+channel_shuffle(p=0.5)")
    assert "test_shuffled_crops" in augpipe.list_policies()
    policy = build_policy("test_shuffled_crops[channel_shuffle.p=1]", size=16, views=2)
    assert "channel_shuffle(p=1)" in policy.spec
    _, params = policy(images, generator=torch.Generator().manual_seed(0), return_params=True)
    assert all(p["apply"].all() for view in params for p in view if p["op"] == "channel_shuffle")
    with pytest.raises(ValueError, match="already a preset"):
        augpipe.register_preset("simclr", "crop")
    with pytest.raises(augpipe.SpecError, match="unknown op 'nope'"):
        augpipe.register_preset("test_bad", "crop+nope")


def test_the_op_makes_no_host_sync_on_the_blend_path(plugin, images):
    policy = build_policy("crop+channel_shuffle(p=0.5)", size=16, views="2x16+2x8@0.05:0.3", gating="blend",
                          compile=False)
    g = torch.Generator().manual_seed(0)
    policy(images, generator=g)
    counts = count_ops(lambda: policy(images, generator=g))
    assert counts.sync_count == 0, counts.syncs
    assert counts.by_name["gather"] >= 2  # the op ran, on both view groups


@pytest.mark.slow
def test_the_op_compiles_fullgraph_and_equals_eager(plugin, images):
    """Full graph (dynamo + AOT autograd, `aot_eager`: a graph break fails here as under inductor)."""
    policy = build_policy("crop+channel_shuffle(p=0.5)", size=16, gating="blend", compile=False)
    params = policy.sample(images, generator=torch.Generator().manual_seed(4))
    compiled = torch.compile(policy.apply, fullgraph=True, backend="aot_eager")(images, params)
    for a, b in zip(compiled, policy.apply(images, params)):
        assert_float_close(a, b)


def test_other_engines_refuse_the_op_by_name_in_one_line(plugin):
    policy = build_policy("crop+channel_shuffle", size=16)
    for engine in ("kornia", "torchvision"):
        with pytest.raises(Unsupported, match=rf"^{engine}: cannot run op 'channel_shuffle' \(it translates: .*\)"):
            build(engine, policy)
    assert build("augpipe", policy).native


def test_the_users_method_option_is_a_flag_in_help_and_refused_in_one_line(plugin, capsys):
    """The option declared in the plugin (outside the repository) becomes a flag with its help,
    is read by the method, and a bad value or another method's flag is refused naming it."""
    from ssl_train.cli import main
    with pytest.raises(SystemExit):
        main(["--plugin", str(plugin), "--help"])
    out = capsys.readouterr().out
    assert "--align_uniform.t" in out and "uniformity kernel sharpness (default: 2.0)" in out
    for argv, message in (
            (["--align_uniform.t", "-1"], "--align_uniform.t: must be > 0, got -1.0"),
            (["--align_uniform.t", "x"], "argument --align_uniform.t: invalid float value: 'x'"),
            (["--align_uniform.t", "2", "--method", "simclr"], "--align_uniform.t applies to --method align_uniform only")):
        base = ["--plugin", str(plugin), "--method", "align_uniform", "--data", "digits"]
        with pytest.raises(SystemExit):
            main(base + argv)
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert message in err, err
    from ssl_train.config import TrainConfig
    from ssl_train.methods import build_method
    cfg = TrainConfig(method="align_uniform", method_options={"t": 4})
    cfg.validate()
    assert cfg.method_options == {"t": 4.0, "weight": 1.0}
    method = build_method("align_uniform", 8, cfg)
    assert method.options.t == 4.0
    z = [torch.randn(6, 4, generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    other = build_method("align_uniform", 8, TrainConfig(method="align_uniform", method_options={"t": 1}))
    other.projector.load_state_dict(method.projector.state_dict())
    assert not torch.allclose(method.loss(z), other.loss(z))  # the option reaches the loss
    from dataclasses import dataclass, field

    from ssl_train import Method, register_method

    class NoDefault(Method):
        name = "no_default"

        @dataclass
        class Options:
            t: float = field(default_factory=float)
        loss = Method.forward
    with pytest.raises(TypeError, match="its option 't' needs a default that is a bool, int, float or str"):
        register_method(NoDefault)
    NoDefault.Options = dict
    with pytest.raises(TypeError, match=r"its `Options` must be a dataclass"):
        register_method(NoDefault)


def test_a_taken_name_or_a_broken_contract_is_refused():
    @register_op
    @dataclass
    class First(Op):
        name = "test_taken"

        def kernel(self, images, params, ctx):
            return images

    with pytest.raises(ValueError, match="an op named 'test_taken' is already registered.*replace=True"):
        @register_op
        @dataclass
        class Second(Op):
            name = "test_taken"

            def kernel(self, images, params, ctx):
                return 1 - images
    with pytest.raises(ValueError, match="'rrc' is already registered"):
        register_op(dataclass(type("Rrc", (First,), {"name": "rrc"})))

    @register_op(replace=True)
    @dataclass
    class Third(Op):
        name = "test_taken"

        def kernel(self, images, params, ctx):
            return 1 - images
    assert augpipe.OPS["test_taken"] is Third
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(build_policy("test_taken", size=4, views=1)(x)[0], 1 - x)

    class NotADataclass(Op):
        name = "test_plain"
    with pytest.raises(TypeError, match="@dataclasses.dataclass.*define kernel"):
        register_op(NotADataclass)
    assert "test_plain" not in augpipe.OPS


def test_the_bench_and_the_experiments_cli_take_the_plugin(plugin, tmp_path, capsys):
    from augpipe import bench
    from experiments.__main__ import main as experiments_main
    out = tmp_path / "bench.json"
    assert bench.main(["--plugin", str(plugin), "--device", "cpu", "--sizes", "16", "--policies",
                       "crop+channel_shuffle(p=0.5),noise", "--engines", "augpipe", "--batch", "8",
                       "--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["policy"] for r in records] == ["crop+channel_shuffle(p=0.5)", "noise"]
    assert experiments_main(["--plugin", str(plugin), "list"]) == 0
    with pytest.raises(SystemExit):
        bench.main(["--plugin", str(tmp_path / "missing.py")])
    err = capsys.readouterr().err
    assert "--plugin" in err and "missing.py" in err and "cannot import" in err


@pytest.mark.slow
def test_a_run_trains_with_the_users_op_and_method(plugin, tmp_path, tmp_path_factory):
    env = {**os.environ, "AUGPIPE_CACHE": str(tmp_path_factory.getbasetemp() / "augpipe-cache")}
    cmd = [sys.executable, "-m", "ssl_train", "--plugin", "my_plugin", "--policy", "crop+channel_shuffle(p=0.5)",
           "--method", "align_uniform", "--align_uniform.t", "3", "--data", "digits", "--epochs", "1", "--image-size", "16",
           "--batch-size", "128", "--num-workers", "0", "--knn-k", "5", "--proj-hidden", "32", "--proj-dim", "16",
           "--no-progress", "--out", str(tmp_path / "run")]
    proc = subprocess.run(cmd, cwd=plugin.parent, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["config"]["method"] == "align_uniform"
    assert result["config"]["method_options"] == {"t": 3.0, "weight": 1.0}  # the flag given, the default
    assert result["time"]["augment_ops_s"]["channel_shuffle"] > 0  # timed like a built-in op
    assert result["knn_top1"] is not None
