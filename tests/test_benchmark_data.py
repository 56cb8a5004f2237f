"""Figures live in benchmark data (benchmarks/*.json, each with its date and machine), and the code
cites them: every key a comment cites exists, every file says when and where it was measured, and
no source file of the packages carries a dated measurement of its own."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["augpipe", "loaders", "ssl_train", "experiments", "_augpipe_shared"]


def sources() -> list[Path]:
    return [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]


def test_every_cited_kernel_choice_is_in_the_data():
    keys = {row["key"] for row in json.loads((ROOT / "benchmarks" / "kernel-choices.json").read_text())["rows"]}
    cited = {}
    for path in sources():
        text = " ".join(path.read_text().split())  # a citation may wrap
        for key in re.findall(r"benchmarks/kernel-choices\.json,? `([\w-]+)`", text):
            cited.setdefault(key, path.name)
    assert cited, "no citation found: the pattern is stale"
    assert not {k: f for k, f in cited.items() if k not in keys}


def test_every_benchmark_file_says_when_and_where():
    for path in (ROOT / "benchmarks").glob("*.json"):
        data = json.loads(path.read_text())
        first = data if isinstance(data, dict) else data[0]
        rows = data if isinstance(data, list) else []
        assert "date" in first or all("date" in r or "machine" in r for r in rows), path.name
        assert any(k in first for k in ("machine", "cpu", "device")), path.name


def test_no_source_file_carries_a_dated_measurement():
    dated = [f"{p.relative_to(ROOT)}:{i}" for p in sources() for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\b20\d\d-\d\d-\d\d\b", line) and not re.search(r"strftime|%Y|date_format", line)]
    assert not dated
