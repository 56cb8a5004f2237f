"""The installed wheel is the product: it installs exactly four packages and the private one they
share, ships every file the code reads at run time, and its command lines work from an empty
folder with no checkout in sight; a user's own `registry.py` or `utils.py` beside their script
changes nothing."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = {"augpipe", "loaders", "ssl_train", "experiments", "_augpipe_shared"}
CONSOLE_SCRIPTS = {"augpipe-bench", "loaders-prepare", "loaders-bench", "ssl-train", "ssl-train-linear-eval", "ssl-train-export",
                   "augpipe-experiments"}
TINY = ["--image-size", "16", "--batch-size", "128", "--proj-hidden", "32", "--proj-dim", "16", "--num-workers", "0",
        "--no-progress", "--knn-k", "10", "--policy", "crop", "--epochs", "1"]


def source_tree(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked, and new ones it does not ignore), copied to
    `dest`: a wheel built in place would reuse a stale `build/` folder, modules since moved included."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = source_tree(tmp_path_factory.mktemp("source"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=600)
    (path,) = out.glob("augpipe-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed, not editable. Its dependencies come
    from this environment's site-packages as a plain path (a `.pth` line), where the editable
    install's own `.pth` finder is not run: the checkout is unreachable."""
    env = tmp_path_factory.mktemp("env")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=300)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    return python


def test_the_wheel_holds_the_four_packages_their_data_and_the_license(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == TOP_LEVEL
    shipped = set(names)
    configs = {f"experiments/configs/{p.name}" for p in (ROOT / "experiments" / "configs").glob("*.json")}
    assert configs and configs <= shipped
    snapshot = {str(p.relative_to(ROOT)) for p in (ROOT / "experiments" / "results").rglob("*")
                if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".pt")}
    assert snapshot and snapshot <= shipped
    assert {"augpipe/py.typed", "loaders/py.typed", "ssl_train/py.typed"} <= shipped  # PEP 561
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert {line.split("=")[0].strip() for line in text.splitlines() if "=" in line} == CONSOLE_SCRIPTS


@pytest.mark.slow
def test_the_installed_command_lines_work_from_an_empty_folder(installed, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    env = {**os.environ, "AUGPIPE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": ""}

    def run(*args):
        proc = subprocess.run([str(installed), *args], cwd=work, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, (args, proc.stderr[-3000:])
        return proc.stdout

    where = run("-c", "import augpipe, experiments; print(augpipe.__file__, experiments.__file__)")
    assert str(ROOT) not in where and "site-packages" in where  # the wheel's copy, not the checkout
    assert "negatives:" in run("-m", "experiments", "list")
    run("-m", "experiments", "run", "negatives", "--data", "digits", "--scale", "smoke", "--runs", "k1",
        "--results", str(work / "results"))
    assert json.loads((work / "results" / "negatives" / "k1-s0" / "result.json").read_text())["knn_top1"] > 0.1
    run("-m", "experiments", "report")  # the shipped snapshot, reported into ./experiments-report
    assert (work / "experiments-report" / "REPORT.md").is_file()
    run("-m", "ssl_train", "--data", "digits", *TINY, "--out", str(work / "run"))
    assert (work / "run" / "result.json").is_file()
    run("-m", "augpipe.bench", "--sizes", "16", "--policies", "simclr", "--engines", "augpipe", "--repeats", "1",
        "--warmup", "0")
    run("-m", "loaders.prepare", "digits:test", str(work / "wds"), "--format", "wds", "--no-progress")
    assert len(list((work / "wds").glob("*.tar"))) == 1


@pytest.mark.slow
def test_a_users_own_modules_named_like_ours_change_nothing(installed, tmp_path):
    """Modules a user may well have beside their script (`registry.py`, `utils.py`, `config.py`,
    and the names this project once installed at the top level) are never imported by ours."""
    for name in ("registry", "utils", "config", "timekeep", "atomicio", "machine", "plugins"):
        (tmp_path / f"{name}.py").write_text(f"raise RuntimeError('the user\\'s own {name}.py was imported')\n")
    (tmp_path / "train.py").write_text(
        "import augpipe, loaders, ssl_train, experiments\n"
        "import ssl_train.loop, loaders.prepare, augpipe.bench\n"
        "policy = augpipe.build_policy('simclr', size=16)\n"
        "print(len(policy(__import__('torch').zeros(2, 3, 16, 16, dtype=__import__('torch').uint8))))\n")
    proc = subprocess.run([str(installed), "train.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0 and proc.stdout.strip() == "2", proc.stderr[-3000:]
