"""Collect every result.json under the results folder into Markdown tables and PNG plots."""
from __future__ import annotations

import json
import math
from pathlib import Path

from _augpipe_shared.atomicio import atomic_write_bytes
from experiments.runner import CONFIGS, RESULTS, list_experiments, load_experiment

REQUIRED = {"knn_top1": float, "knn_top1_random_init": float, "config": dict, "time": dict}


def read_result(path: Path) -> tuple[dict | None, str | None]:
    """A result.json as a dict, or the one-line reason it cannot be used."""
    try:
        r = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"unreadable ({type(err).__name__})"
    if not isinstance(r, dict):
        return None, "not a JSON object"
    bad = [k for k, kind in REQUIRED.items() if not isinstance(r.get(k), (kind, int) if kind is float else kind)]
    if bad:
        return None, f"missing or invalid {', '.join(bad)}"
    # NaN / inf parse as floats: a metric that is not a number is never a table's best value
    odd = [f"{k}={r[k]}" for k in ("knn_top1", "knn_top1_random_init", "linear_top1")
           if isinstance(r.get(k), float) and not math.isfinite(r[k])]
    return (None, f"non-finite {', '.join(odd)}") if odd else (r, None)


def collect(results: Path, warn=print) -> dict[str, list[dict]]:
    """Every run once: its result, else its failure; results that cannot be read are named and skipped."""
    found: dict[str, list[dict]] = {}
    runs = sorted({p.parent for p in results.glob("*/*/result.json")} | {p.parent for p in results.glob("*/*/failed.txt")})
    for run in runs:
        experiment = run.parent.name
        if (run / "result.json").exists():
            r, problem = read_result(run / "result.json")
            if problem:
                warn(f"warning: skipped {run / 'result.json'}: {problem}")
                continue
        else:
            r = {"failed": (run / "failed.txt").read_text().strip()}
        r["experiment"], r["run"] = experiment, run.name
        found.setdefault(experiment, []).append(r)
    return found


VERDICT_RULE = (
    "Statistics: each row is one run id over its seeds (n), mean ± sample sd. A row **learns** when its "
    "kNN beats the random-init floor of the same seeds by more than 2 sd of the per-seed differences "
    "(paired: the same seed gives the same initial network and data order). Two rows **differ** when, "
    "over the seeds they share (at least 2), the mean per-seed difference is more than 2 sd of those "
    "differences (*paired*); rows without 2 shared seeds differ when their means are more than 2 pooled "
    "sd apart. Otherwise they are *within seed noise*. n = 1 gives no verdict.")


def _stats(values: list[float]) -> tuple[float, float]:
    import statistics
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def _pm(values: list[float], digits: int = 3) -> str:
    mean, sd = _stats(values)
    return f"{mean:.{digits}f}" if len(values) < 2 else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def run_id(run: str) -> str:
    """`noise-0.1-s2` -> `noise-0.1`: the run without its seed."""
    head, _, seed = run.rpartition("-s")
    return head if head and seed.isdigit() else run


def group(runs: list[dict]) -> dict[str, list[dict]]:
    """Finished runs by run id, in first-seen order."""
    groups: dict[str, list[dict]] = {}
    for r in runs:
        if "failed" not in r:
            groups.setdefault(run_id(r["run"]), []).append(r)
    return groups


def above_floor(rows: list[dict]) -> str:
    diffs = [r["knn_top1"] - r["knn_top1_random_init"] for r in rows]
    if len(diffs) < 2:
        return "n = 1"
    mean, sd = _stats(diffs)
    verdict = "**learns**" if mean > 2 * sd and mean > 0 else "within seed noise"
    return f"{mean:+.3f} ± {sd:.3f}: {verdict}"


def compare(a: dict[int, float], b: dict[int, float]) -> str:
    """'higher' / 'lower' / 'within seed noise' for a against b (values by seed), by the rule above:
    paired over shared seeds when there are 2 or more, else by the pooled sd."""
    shared = sorted(a.keys() & b.keys())
    if len(shared) >= 2:  # the same seed is the same initial network and data order: compare seed by seed
        mean, sd = _stats([a[seed] - b[seed] for seed in shared])
        spread, tag = 2 * sd, " (paired)"
    elif len(a) >= 2 and len(b) >= 2:
        (ma, sa), (mb, sb) = _stats(list(a.values())), _stats(list(b.values()))
        pooled = (((len(a) - 1) * sa ** 2 + (len(b) - 1) * sb ** 2) / (len(a) + len(b) - 2)) ** 0.5
        mean, spread, tag = ma - mb, 2 * pooled, ""
    else:
        return "n = 1"
    if abs(mean) <= spread:
        return "within seed noise" + tag
    return ("higher" if mean > 0 else "lower") + tag


def _by_seed(rows: list[dict]) -> dict[int, float]:
    return {r["config"]["seed"]: r["knn_top1"] for r in rows}


def _row(rid: str, rows: list[dict], best: dict[str, float]) -> str:
    c = rows[0]["config"]
    knn = [r["knn_top1"] for r in rows]
    probe = [r["linear_top1"] for r in rows if isinstance(r.get("linear_top1"), (int, float))]
    floor = [r["knn_top1_random_init"] for r in rows]
    ms = [r["time"]["augment_ms_per_image"] for r in rows]
    epoch_s = [r["time"]["total_s"] / max(1, r["config"]["epochs"]) for r in rows]
    top = best.get(rid)
    vs_best = ""
    if top is not None and len(knn) > 1:
        verdict = "best" if top == rid else compare(_by_seed(rows), best["_values"][top])
        vs_best = "" if verdict == "n = 1" else (" (best)" if top == rid else f" ({verdict} vs {top})")
    return (f"| {rid} | {len(rows)} | {c['policy']} | {c['negatives']} | {c['batch_size']} | {c['lr']:g} ({c['lr_scaling']}) "
            f"| {c['epochs']} | **{_pm(knn)}** | {_pm(probe) if probe else 'n/a'} | {_pm(floor)} | {above_floor(rows)}{vs_best} "
            f"| {_pm(ms, 3)} | {_stats(epoch_s)[0]:.0f} |")


HEADER = ("| run | n | policy | negatives | batch | lr (rule) | epochs | kNN top-1 | probe top-1 | random-init kNN | "
          "kNN − floor (paired) | augment ms/img | s per epoch |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def _best(groups: dict[str, list[dict]]) -> dict:
    """The best run id (by mean kNN) among the SSL runs, for the 'than best' comparison."""
    ssl = {rid: _by_seed(rows) for rid, rows in groups.items() if rows[0]["config"].get("method") != "supervised"}
    if len(ssl) < 2:
        return {}
    top = max(ssl, key=lambda rid: _stats(list(ssl[rid].values()))[0])
    return {**{rid: top for rid in ssl}, "_values": ssl}


def _lr_choice(groups: dict[str, list[dict]]) -> list[str]:
    """Per batch size: the lr grid's kNN on the tuning seed (the lowest seed every lr of that batch
    ran), the lr chosen there, and the chosen run over all its seeds (further seeds confirm the
    choice; they are not used to make it)."""
    by_batch: dict[int, list[str]] = {}
    for rid, rows in groups.items():
        by_batch.setdefault(rows[0]["config"]["batch_size"], []).append(rid)
    lines = ["| batch | tuning seed | lr grid (kNN on the tuning seed) | chosen | chosen, all seeds (n) |",
             "|---|---|---|---|---|"]
    for batch in sorted(by_batch):
        rids = sorted(by_batch[batch], key=lambda rid: groups[rid][0]["config"]["lr"])
        shared = set.intersection(*(set(_by_seed(groups[rid])) for rid in rids))
        if not shared:
            continue
        seed = min(shared)
        on_seed = {rid: _by_seed(groups[rid])[seed] for rid in rids}
        chosen = max(rids, key=on_seed.get)
        grid = ", ".join(f"{groups[rid][0]['config']['lr']:g}: {on_seed[rid]:.3f}" for rid in rids)
        knn = [r["knn_top1"] for r in groups[chosen]]
        lines.append(f"| {batch} | {seed} | {grid} | {chosen} | {_pm(knn)} ({len(knn)}) |")
    return lines


def markdown(found: dict[str, list[dict]]) -> str:
    parts = ["# Experiment results (generated by `python -m experiments report`)\n", VERDICT_RULE + "\n"]
    for name in list_experiments():
        runs = found.get(name, [])
        experiment = load_experiment(name)
        parts.append(f"## {name}\n\nClaim: {experiment['claim']}\n")
        if "uses" in experiment:
            parts.append(f"Plot over the runs of {', '.join(experiment['uses'])}: `cost-vs-accuracy.png`.\n")
            continue
        if not runs:
            parts.append("No runs yet.\n")
            continue
        groups = group(runs)
        best = _best(groups)
        parts.append(HEADER)
        parts += [_row(rid, rows, best) for rid, rows in groups.items()]
        parts += [f"| {r['run']} | failed: {r['failed']} | | | | | | | | | | | |" for r in runs if "failed" in r]
        if experiment.get("tunes_lr") and groups:
            parts += ["", "Learning rate per batch size (tuned on one seed, then confirmed on others):", ""] + _lr_choice(groups)
        parts.append("")
    return "\n".join(parts) + "\n"


def _sd(values) -> float:
    return _stats(values)[1] if len(values) > 1 else 0.0


def _cost_axis(ax, label: str, points, colours, first: bool) -> None:
    """One panel of the cost plot: each run id at its mean cost and kNN, error bars 1 sd."""
    labelled = set()
    for name, rid, rows in points:
        knn = [r["knn_top1"] for r in rows]
        xs = [r["time"]["augment_ms_per_image"] if first else r["time"]["total_s"] / r["config"]["epochs"]
              for r in rows]
        x, y = _stats(xs)[0], _stats(knn)[0]
        ax.errorbar(x, y, xerr=_sd(xs), yerr=_sd(knn), fmt="o", markersize=4, capsize=2,
                    color=colours[name], label=None if name in labelled else name)
        labelled.add(name)
        ax.annotate(f"{rid} ({len(rows)})", (x, y), xytext=(4, 3), textcoords="offset points",
                    fontsize=7, color=colours[name])
    floors = [r["knn_top1_random_init"] for _, _, rows in points for r in rows]
    floor = _stats(floors)[0]
    ax.axhline(floor, color="gray", linestyle="--", label=f"random init ({floor:.3f})")
    ax.set_xlabel(label)
    ax.set_ylabel("kNN top-1 (mean ± sd over seeds; (n) seeds)")
    ax.legend(fontsize=8)


def _cost_plot(plt, points, uses, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    colours = {name: f"C{i}" for i, name in enumerate(uses)}  # one colour per experiment, one legend entry
    for i, (ax, label) in enumerate([(axes[0], "augmentation ms per image"), (axes[1], "total seconds per epoch")]):
        _cost_axis(ax, label, points, colours, first=i == 0)
    fig.suptitle("cost vs accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bar_chart(plt, name: str, groups: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(max(7, 0.7 * len(groups)), 4))
    knn = {rid: [r["knn_top1"] for r in rows] for rid, rows in groups.items()}
    ax.bar(list(knn), [_stats(v)[0] for v in knn.values()], yerr=[_sd(v) for v in knn.values()], capsize=3,
           label="kNN top-1 (mean ± sd)")
    floors = [r["knn_top1_random_init"] for rows in groups.values() for r in rows]
    ax.axhline(_stats(floors)[0], color="gray", linestyle="--", label="random init")
    ax.set_ylabel("kNN top-1")
    ax.set_title(name)
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plots(found: dict[str, list[dict]], out: Path) -> list[Path]:
    """cost-vs-accuracy (each run id at its mean, error bars 1 sd over seeds) and a bar chart per
    experiment that has runs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    uses = load_experiment("cost-vs-accuracy")["uses"]
    points = [(name, rid, rows) for name in uses for rid, rows in group(found.get(name, [])).items()]
    if points:
        written.append(out / "cost-vs-accuracy.png")
        _cost_plot(plt, points, uses, written[-1])
    for name in list_experiments():  # a bar chart for every experiment with runs of its own
        groups = group(found.get(name, []))
        if groups:
            written.append(out / f"{name}.png")
            _bar_chart(plt, name, groups, written[-1])
    return written


def default_out(results: Path) -> Path:
    """Where a report of `results` goes: beside the results, except for the snapshot installed
    with the package (never written into site-packages): `./experiments-report`. In a source
    checkout the snapshot's own REPORT.md is rewritten, as it is committed."""
    installed = results.resolve() == RESULTS.resolve() and not (RESULTS.parents[1] / "setup.cfg").is_file()
    return Path("experiments-report") if installed else results


def report(results: Path = RESULTS, out: Path | None = None) -> tuple[Path, list[Path]]:
    """REPORT.md and the plots of the runs in `results`, an existing folder (else ValueError),
    written into `out` (default: `default_out(results)`)."""
    if not results.is_dir():
        what = "is not a folder" if results.exists() else "does not exist"
        raise ValueError(f"--results {results}: {what}; give the folder an experiment wrote "
                         "(python -m experiments run NAME --results FOLDER)")
    out = default_out(results) if out is None else out
    found = collect(results)
    path = atomic_write_bytes(out / "REPORT.md", markdown(found).encode())
    return path, plots(found, out)


__all__ = ["collect", "markdown", "report", "CONFIGS"]
