"""What a run writes and prints: the epoch line, log.csv, result.json's content and the summary."""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import torch

from _augpipe_shared.atomicio import write_text
from ssl_train.provenance import run_versions


def result_record(cfg, device: torch.device, world: int, state, steps_per_epoch: int,
                  images: dict[str, int]) -> dict:
    """result.json: final metrics, the time account (cost), the config, the images each split
    had (`images`: after the subsets), and what made it."""
    final, totals = state.history[-1], state.totals
    train_s = totals["data"] + totals["augment"] + totals["model"]
    images_seen = steps_per_epoch * cfg.batch_size * cfg.epochs
    return {
        "knn_top1": final.get("knn_top1"),
        "linear_top1": final["linear_top1"],
        "knn_top1_random_init": state.knn_init,
        "time": {"aug_engine": cfg.aug_engine, "data_s": totals["data"], "augment_s": totals["augment"],
                 "model_s": totals["model"], "eval_s": totals["eval"], "total_s": train_s + totals["eval"],
                 "augment_ops_s": state.op_totals,
                 "augment_ms_per_image": 1000 * totals["augment"] / max(images_seen, 1),
                 "images_per_s": images_seen / max(train_s, 1e-9)},
        "epochs": state.history,
        "images": images,
        "config": cfg.to_dict(),
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "world_size": world,
        "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "aug_threads": (cfg.aug_threads or torch.get_num_threads()) if device.type == "cpu" else None,
        "versions": run_versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def epoch_line(row: dict) -> str:
    knn = f" knn {row['knn_top1']:.3f}" if "knn_top1" in row else ""
    probe = f" probe {row['linear_top1']:.3f}" if row["linear_top1"] is not None else ""
    return (f"epoch {row['epoch']}: loss {row['loss']:.4f}{knn}{probe} | "
            f"data {row['data_s']:.1f}s augment {row['augment_s']:.1f}s model {row['model_s']:.1f}s "
            f"eval {row['eval_s']:.1f}s | {row['images_per_s']:.0f} img/s")


def write_csv(history: list[dict], path: Path) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(buf.getvalue(), path)


def summary(result: dict) -> str:
    t = result["time"]
    knn = result["knn_top1"]
    lines = [f"kNN top-1 {knn:.3f} (random init {result['knn_top1_random_init']:.3f}), "
             + (f"online linear probe top-1 {result['linear_top1']:.3f}" if result["linear_top1"] is not None
                else "no online probe (unlabeled training split)"),
             f"time: data {t['data_s']:.1f}s | augment {t['augment_s']:.1f}s "
             f"({t['augment_ms_per_image']:.3f} ms/image) | model {t['model_s']:.1f}s | eval {t['eval_s']:.1f}s | "
             f"total {t['total_s']:.1f}s | {t['images_per_s']:.0f} img/s"]
    if t["augment_ops_s"]:
        lines.append("augment by op: " + ", ".join(f"{k} {v:.2f}s" for k, v in
                                                  sorted(t["augment_ops_s"].items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)
