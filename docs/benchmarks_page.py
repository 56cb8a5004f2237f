"""Writes docs/benchmarks.md from the committed benchmark data (benchmarks/*.json) when the site
is built, so the page cannot drift from the figures: each file's description, date, machine and
versions, then its rows as a table of their plain fields."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks"
PAGE = Path(__file__).resolve().parent / "benchmarks.md"
MAX_COLUMNS = 10


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _rows(data) -> list[dict]:
    rows = data if isinstance(data, list) else data.get("rows") or data.get("records") or []
    return [r for r in rows if isinstance(r, dict)]


def _about(data, rows: list[dict]) -> list[str]:
    source = data if isinstance(data, dict) else (rows[0] if rows else {})
    lines = []
    for key in ("what", "date", "command", "cpu", "cores"):
        if key in source:
            lines.append(f"- **{key}:** {_cell(source[key])}")
    for key in ("machine", "versions"):
        if isinstance(source.get(key), dict):
            lines.append(f"- **{key}:** " + ", ".join(f"{k} {_cell(v)}" for k, v in source[key].items()))
    return lines


def _table(rows: list[dict]) -> list[str]:
    columns = []
    for row in rows:
        columns += [k for k, v in row.items() if k not in columns and not isinstance(v, (dict, list))]
    columns = columns[:MAX_COLUMNS]
    if not columns:
        return []
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return lines


def page() -> str:
    out = ["# Benchmarks", "",
           "Generated from the measured figures committed in `benchmarks/` (each file names its machine, "
           "versions and date). `make bench-aug` and `make bench-load` measure them again on your machine.", ""]
    for path in sorted(DATA.glob("*.json")):
        data = json.loads(path.read_text())
        rows = _rows(data)
        out += [f"## {path.stem}", "", *_about(data, rows), "", *_table(rows), ""]
        plot = path.with_suffix(".png")
        if plot.exists():
            out += [f"![{path.stem}](../benchmarks/{plot.name})", ""]
    return "\n".join(out)


def write(app=None) -> None:
    """The Sphinx hook (`builder-inited`): write the page before the sources are read."""
    PAGE.write_text(page())
