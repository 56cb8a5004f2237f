"""Writes docs/benchmarks.md from the committed benchmark data (benchmarks/*.json) when the site
is built, so the page cannot drift from the figures: each file's description, date, machine and
versions; for speed records (`images_per_s` by `engine` or `loader`), one table with a column per
engine and augpipe's speed-up (or the loaders' over the torchvision baseline), and a bar chart
where the file has no committed plot; then every row of plain fields."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks"
PAGE = Path(__file__).resolve().parent / "benchmarks.md"
PLOTS = Path(__file__).resolve().parent / "_generated"
MAX_COLUMNS = 10

# Files written by the benchmark commands as plain lists of records say what they are here.
ABOUT = {
    "bench-aug": "`make bench-aug` (`python -m augpipe.bench`): input images per second, each giving 2 views, "
                 "the median of 5 calls after 2 warm-up calls; torchvision runs image by image, as in a "
                 "DataLoader worker.",
    "recipes": "The supervised recipes (`cifar-aa`, `timm-ra`, `trivialaugment`) through augpipe, torchvision "
               "per image and Kornia: `python -m augpipe.bench --sizes 32,224 --policies cifar-aa,timm-ra,"
               "trivialaugment --engines augpipe,torchvision,kornia`. Kornia's auto-augment ops draw one op "
               "for the whole batch, where augpipe and torchvision draw one per image.",
    "bench-load": "`make bench-load` (`python -m loaders.bench`): images per second of each loader backend "
                  "against torchvision's `ImageFolder` with PIL transforms and the same workers.",
    "bench-load-dali": "Our `dali` backend against DALI's own reader pipeline (`dali-bare`), with decode-time "
                       "random crops: `python -m loaders.bench --backends dali,dali-bare --random-crop`.",
}
# The column speed-ups are measured against, per kind of record.
REFERENCE = {"engine": "augpipe", "loader": "baseline"}


def _cell(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)) and abs(value) >= 1000:
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _rows(data) -> list[dict]:
    rows = data if isinstance(data, list) else data.get("rows") or data.get("records") or []
    return [r for r in rows if isinstance(r, dict)]


def _about(name: str, data, rows: list[dict]) -> list[str]:
    source = data if isinstance(data, dict) else (rows[0] if rows else {})
    lines = [ABOUT[name], ""] if name in ABOUT else []
    for key in ("what", "date", "command", "cpu", "cores"):
        if key in source:
            lines.append(f"- **{key}:** {_cell(source[key])}")
    for key in ("machine", "versions"):
        if isinstance(source.get(key), dict):
            lines.append(f"- **{key}:** " + ", ".join(f"{k} {_cell(v)}" for k, v in source[key].items()))
    return lines


def _speed_layout(rows: list[dict]) -> tuple[str, list[str]] | None:
    """For speed records: the field that names the column (`engine` or `loader`) and the fields
    that name a case (policy or dataset, size, batch); None for other records."""
    by = next((k for k in REFERENCE if rows and all(k in r and "images_per_s" in r for r in rows)), None)
    if by is None:
        return None
    return by, [k for k in ("policy", "dataset", "size", "batch") if all(k in r for r in rows)]


def _speed_table(rows: list[dict]) -> list[str]:
    """images/s with one column per engine (or loader), and each column's ratio to the reference."""
    layout = _speed_layout(rows)
    if layout is None:
        return []
    by, keys = layout
    columns = list(dict.fromkeys(r[by] for r in rows))
    cases = {}
    for r in rows:
        cases.setdefault(tuple(r[k] for k in keys), {})[r[by]] = r["images_per_s"]
    reference = REFERENCE[by]
    if by == "engine":
        note = f"images/s; (N×) = {reference}'s speed over that engine"
    else:
        note = f"images/s; (N×) = that loader's speed over the {reference}"
    lines = [note, "", "| " + " | ".join(keys + columns) + " |", "|" + "---|" * (len(keys) + len(columns))]
    for case, speeds in cases.items():
        cells = []
        for column in columns:
            speed, ref = speeds.get(column), speeds.get(reference)
            if speed is None:
                cells.append("")
            elif ref is None or column == reference:
                cells.append(_cell(speed))
            else:
                ratio = ref / speed if by == "engine" else speed / ref
                cells.append(f"{_cell(speed)} ({ratio:.1f}×)")
        lines.append("| " + " | ".join([_cell(c) for c in case] + cells) + " |")
    return lines + [""]


def _speed_plot(name: str, rows: list[dict]) -> str | None:
    """A bar chart of the speed records (log scale: engines differ by orders of magnitude), for a
    file that has no committed plot of its own; returns its path relative to the page."""
    layout = _speed_layout(rows)
    if layout is None:
        return None
    by, keys = layout
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def label(r):
        return " ".join(f"{r[k]} px" if k == "size" else f"b{r[k]}" if k == "batch" else str(r[k]) for k in keys)

    cases = list(dict.fromkeys(label(r) for r in rows))
    columns = list(dict.fromkeys(r[by] for r in rows))
    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(cases) * len(columns) ** 0.5), 3.5))
    for i, column in enumerate(columns):
        speeds = {label(r): r["images_per_s"] for r in rows if r[by] == column}
        ax.bar([j + i * width for j in range(len(cases))], [speeds.get(c, 0) for c in cases], width, label=column)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cases))], cases, rotation=30, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("images/s")
    ax.legend(fontsize=7)
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    fig.savefig(PLOTS / f"{name}.png", dpi=110)
    plt.close(fig)
    return f"_generated/{name}.png"


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
           "Generated from the measured figures committed in `benchmarks/`, each file with its machine, "
           "versions and date. `make bench-aug` and `make bench-load` measure them again on your machine "
           "([Benchmarking](guide/benchmarking.md)). A shared machine moves between runs: compare engines "
           "within one file.", ""]
    for path in sorted(DATA.glob("*.json")):
        data = json.loads(path.read_text())
        rows = _rows(data)
        committed = path.with_suffix(".png")
        plot = f"../benchmarks/{committed.name}" if committed.exists() else _speed_plot(path.stem, rows)
        out += [f"## {path.stem}", ""]
        if plot:
            out += [f"![{path.stem}]({plot})", ""]
        out += [*_about(path.stem, data, rows), ""]
        speed = _speed_table(rows)
        if speed:
            out += [*speed, "All the fields:", ""]
        out += [*_table(rows), ""]
    return "\n".join(out)


def write(app=None) -> None:
    """The Sphinx hook (`builder-inited`): write the page before the sources are read."""
    PAGE.write_text(page())
