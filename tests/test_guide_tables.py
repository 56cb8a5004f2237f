"""The guide's (docs/guide.md) op and preset tables are the registries': every built-in op and every preset is
listed, nothing else is, and each op's torchvision class exists in `torchvision.transforms.v2`."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table(header: str) -> list[list[str]]:
    """The rows (cells) of the guide table whose header row starts with `header`."""
    lines = (ROOT / "docs" / "guide.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def names(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


def registries() -> tuple[set[str], set[str]]:
    """The built-in ops and presets, read in a fresh process (tests register ops of their own)."""
    out = subprocess.run([sys.executable, "-c", "import augpipe; print(' '.join(augpipe.OPS)); "
                          "print(' '.join(augpipe.list_policies()))"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    return set(out[0].split()), set(out[1].split())


def test_the_op_and_preset_tables_list_exactly_the_registries():
    ops, presets = registries()
    op_rows = table("| op | torchvision |")
    listed_ops = set().union(*(names(row[0]) for row in op_rows))
    assert listed_ops == ops, {"missing": sorted(ops - listed_ops), "not an op": sorted(listed_ops - ops)}
    listed_presets = set().union(*(names(row[0]) for row in table("| preset | views |")))
    assert listed_presets == presets, {"missing": sorted(presets - listed_presets),
                                       "not a preset": sorted(listed_presets - presets)}


def test_every_torchvision_class_the_op_table_names_exists():
    from torchvision.transforms import v2
    named = {name for row in table("| op | torchvision |")
             for name in re.findall(r"\b([A-Z][A-Za-z]+)\b", row[1].split("(")[0])}
    assert named and not [n for n in named if not hasattr(v2, n)]
