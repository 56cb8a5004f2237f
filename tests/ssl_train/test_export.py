"""`python -m ssl_train.export`: a run's backbone (or BYOL's teacher) as safetensors, which loads
strictly into the module its JSON describes and gives the trained features."""
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ssl_train.backbones import build_backbone
from ssl_train.checkpoint import load_checkpoint
from ssl_train.cli import main
from ssl_train.export import main as export_main

TINY = ["--data", "digits", "--image-size", "16", "--batch-size", "64", "--proj-hidden", "64", "--proj-dim", "32",
        "--num-workers", "0", "--no-progress", "--knn-k", "20", "--policy", "crop", "--epochs", "1"]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUGPIPE_CACHE", str(tmp_path_factory.getbasetemp() / "augpipe-cache"))


@pytest.fixture(scope="module")
def byol_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "byol"
    assert main([*TINY, "--method", "byol", "--out", str(out), "--train-subset", "512"]) == 0
    return out


def features(module, x):
    module.eval()
    with torch.no_grad():
        return module(x)


@pytest.mark.slow
@pytest.mark.parametrize("teacher", [False, True])
def test_the_export_loads_into_the_backbone_it_describes(byol_run, tmp_path, teacher, capsys):
    out = tmp_path / "weights.safetensors"
    assert export_main(["--run", str(byol_run), "--out", str(out), *(["--teacher"] if teacher else [])]) == 0
    assert "wrote" in capsys.readouterr().out
    about = json.loads(out.with_suffix(".json").read_text())
    result = json.loads((byol_run / "result.json").read_text())
    assert about["weights"] == ("teacher" if teacher else "backbone")
    assert (about["backbone"], about["image_size"], about["method"]) == ("small", 16, "byol")
    assert about["knn_top1"] == result["knn_top1"] and about["epochs_trained"] == 1
    with safe_open(str(out), framework="pt") as f:
        assert json.loads(f.metadata()["method"]) == "byol"
    module, _ = build_backbone(about["backbone"], about["image_size"])
    module.load_state_dict(load_file(str(out)))  # strict: every tensor, nothing else
    trained = load_checkpoint(byol_run / "checkpoint.pt")["trainer"]
    prefix = "method.target_backbone." if teacher else "backbone."
    reference, _ = build_backbone("small", 16)
    reference.load_state_dict({k[len(prefix):]: v for k, v in trained.items() if k.startswith(prefix)})
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(features(module, x), features(reference, x))
    fresh, _ = build_backbone("small", 16)
    assert not torch.allclose(features(fresh, x), features(module, x))  # trained weights, not a new init


@pytest.mark.slow
def test_what_cannot_be_exported_is_said_in_one_line(byol_run, tmp_path, capsys):
    simclr = tmp_path / "simclr"
    assert main([*TINY, "--method", "simclr", "--out", str(simclr), "--train-subset", "256"]) == 0
    capsys.readouterr()
    cases = [(["--run", str(simclr), "--out", str(tmp_path / "t.safetensors"), "--teacher"],
              f"--run {simclr}: its method (simclr) has no teacher to export; export the backbone (without --teacher)"),
             (["--run", str(tmp_path / "none"), "--out", str(tmp_path / "x.safetensors")], "no checkpoint file here"),
             (["--run", str(byol_run), "--out", str(tmp_path / "x.pt")], "expected a file name ending in .safetensors")]
    for args, message in cases:
        assert export_main(args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "t.safetensors").exists() and not (tmp_path / "t.json").exists()
