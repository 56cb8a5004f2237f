"""The reference tables of the guides (docs/tables.py, included by docs/guide/ops.md, policies.md and
drop-in.md) are the registries': every built-in op, preset and convertible torchvision transform is
listed with what the code says about it, and nothing else is."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import tables  # noqa: E402  (docs/ is not a package)


def rows(table: str) -> list[list[str]]:
    """The cells of each body row of a generated markdown table."""
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in table.splitlines()[2:]]


def names(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


@pytest.fixture(scope="module")
def fresh() -> dict:
    """The tables and the registries, made in a fresh process (tests register ops of their own)."""
    code = ("import json, sys; sys.path.insert(0, 'docs'); import tables, augpipe; "
            "from augpipe.interop import _torchvision as tv; "
            "print(json.dumps({'ops': tables.op_table(), 'presets': tables.preset_table(), "
            "'transforms': tables.transform_table(), 'op_names': sorted(augpipe.OPS), "
            "'preset_names': augpipe.list_policies(), 'supported': tv.supported()}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_op_and_preset_tables_list_exactly_the_registries(fresh):
    made = fresh
    assert [row[0].strip("`") for row in rows(made["ops"])] == made["op_names"]
    assert [row[0].strip("`") for row in rows(made["presets"])] == made["preset_names"]


def test_each_op_row_holds_its_defaults_and_torchvision_classes():
    import augpipe
    by_name = {row[0].strip("`"): row for row in rows(tables.op_table())}
    jitter = by_name["jitter"]
    assert "p=0.8" in jitter[1] and "ColorJitter" in jitter[2]
    assert "std=0.1" in by_name["noise"][1]
    assert by_name["rrc"][2].startswith("RandomResizedCrop")
    from torchvision.transforms import v2
    named = {name for row in by_name.values() for name in re.findall(r"[A-Z][A-Za-z]+", row[2])}
    assert named and not [n for n in named if not hasattr(v2, n)]
    for name, cls in augpipe.OPS.items():
        if cls.__doc__:
            assert by_name[name][3], name  # the docstring's first paragraph


def test_an_op_registered_by_user_code_gets_its_row(tmp_path):
    code = ("import sys; sys.path.insert(0, 'docs'); import tables\n"
            "from dataclasses import dataclass\nfrom augpipe import Op, register_op\n"
            "@register_op\n@dataclass\nclass Dim(Op):\n    '''`dim(p=0.5, f=0.5)`: darker.'''\n"
            "    name = 'dim'\n    f: float = 0.5\n    def kernel(self, images, params, ctx):\n"
            "        return images * self.f\nprint(tables.op_table())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    row = next(r for r in rows(out) if r[0] == "`dim`")
    assert "f=0.5" in row[1] and row[2] == "none" and row[3] == "Darker."


def test_the_transform_table_lists_what_the_converter_supports(fresh):
    made = fresh
    listed = [row[0].strip("`") for row in rows(made["transforms"])]
    assert listed == made["supported"]
    from augpipe.interop import _torchvision as converter
    ops = converter.translations()
    for row in rows(made["transforms"]):
        name = row[0].strip("`")
        if name in ops:
            assert names(row[1]) == {ops[name].name}
    assert set(tables.FORMAT_NOTES) <= set(made["supported"])  # no note for a transform that is gone
