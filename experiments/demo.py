"""`python -m experiments.demo` (what `make demo` runs): the seed paper's claim in one command.

SimCLR trains on the embedded digits at their native 8 px, on the CPU, three times on the same
budget:
- a recipe suited to digits: one-pixel shifts and Gaussian noise, no flips (a flipped digit is
  another digit) and no colour jitter (the scans are grey);
- Gaussian noise alone as the positive pair's augmentation (Bordes et al. 2023: it learns);
- no augmentation: the two views are the same image.

It prints one table: each policy, what its augmentation cost per image, the kNN accuracy it
reached, the same network's kNN at random init (the floor), and the online linear probe. On the
digits even identical views learn something (the loss still spreads the images apart); the
probe tells the augmentations apart more than the kNN does. Each run is an ordinary run folder
under `--out` (`result.json`, `log.csv`, `config.json`).
"""
from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from _augpipe_shared.cli import ArgumentParser

POLICIES = {"digits recipe": "rcrop(1)+noise(std=0.1)", "noise alone": "noise(std=0.1)", "none": "identity"}


@dataclass
class Budget:
    """What every demo run shares (small batches and many steps, as the paper argues)."""
    image_size: int = 8
    batch_size: int = 64
    epochs: int = 30
    seed: int = 0


def folder_name(policy: str) -> str:
    return policy.replace(" ", "-")


def run_demo(out: Path, budget: Budget = Budget(), policies: dict[str, str] = POLICIES, log=print) -> list[dict]:
    """Train one SimCLR run per policy into `out/<policy>`.

    Args:
        out: The folder of the runs (one subfolder per policy, replaced if present).
        budget: The shared budget.
        policies: Label -> policy spec.
        log: Where progress lines go.

    Returns:
        One row per policy: `policy`, `spec`, `augment_ms_per_image`, `knn_top1`, `knn_floor`,
        `linear_top1` (the online linear probe).
    """
    from ssl_train.config import TrainConfig
    from ssl_train.loop import train
    rows = []
    for label, spec in policies.items():
        cfg = TrainConfig(data="digits", policy=spec, method="simclr", num_workers=0, image_size=budget.image_size,
                          batch_size=budget.batch_size, epochs=budget.epochs, seed=budget.seed,
                          out=str(Path(out) / folder_name(label)))
        log(f"training SimCLR with {label} ({spec}): {budget.epochs} epochs at {budget.image_size} px")
        with contextlib.redirect_stdout(io.StringIO()):  # the epoch lines: log.csv has them
            result = train(cfg, overwrite=True, progress=False)
        rows.append({"policy": label, "spec": spec, "augment_ms_per_image": result["time"]["augment_ms_per_image"],
                     "knn_top1": result["knn_top1"], "knn_floor": result["knn_top1_random_init"],
                     "linear_top1": result["linear_top1"]})
    return rows


def table(rows: list[dict]) -> str:
    """The rows as an aligned text table."""
    head = ("policy", "spec", "augment ms/img", "kNN top-1", "random-init kNN", "kNN - floor", "probe top-1")
    body = [(r["policy"], r["spec"], f"{r['augment_ms_per_image']:.3f}", f"{r['knn_top1']:.3f}",
             f"{r['knn_floor']:.3f}", f"{r['knn_top1'] - r['knn_floor']:+.3f}", f"{r['linear_top1']:.3f}")
            for r in rows]
    widths = [max(len(str(line[i])) for line in (head, *body)) for i in range(len(head))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in (head, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder of the three runs")
    parser.add_argument("--epochs", type=int, default=Budget.epochs, help="epochs of each run")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs: must be >= 1, got {args.epochs}")
    rows = run_demo(args.out, Budget(epochs=args.epochs))
    print()
    print(table(rows))
    print(f"\nruns in {args.out}/: result.json (kNN, probe, time account), log.csv, config.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
