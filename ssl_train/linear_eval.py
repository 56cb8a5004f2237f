"""`python -m ssl_train.linear_eval --run DIR`: offline linear evaluation of a saved run.

Loads DIR/checkpoint.pt and its configuration, extracts frozen backbone features of the train and
test splits (centre crops, no augmentation), trains a linear classifier on them and writes
DIR/linear_eval.json (atomically).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import augpipe
import loaders
from _augpipe_shared.atomicio import write_json
from _augpipe_shared.cli import ArgumentParser
from _augpipe_shared.machine import pick_device
from loaders.sources.scan import DatasetError
from ssl_train.backbones import build_backbone
from ssl_train.checkpoint import CheckpointError, load_checkpoint
from ssl_train.config import TrainConfig
from ssl_train.evaluate import extract, linear_eval
from ssl_train.methods import build_method
from ssl_train.parts import NORMALIZE, Trainer, data_splits
from ssl_train.rundir import RunError


def evaluate_run(run: Path, epochs: int = 100, lr: float = 1e-2, device: str = "auto") -> dict:
    ckpt = run / "checkpoint.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no checkpoint (expected the --out folder of an ssl_train run)")
    state = load_checkpoint(ckpt)  # weights_only: a crafted file cannot run code
    try:
        cfg = TrainConfig.from_dict(state["config"])
        cfg.validate()
    except (TypeError, ValueError, AttributeError) as err:  # a hand-edited or foreign config
        raise CheckpointError(f"{ckpt}: its config is not a valid ssl_train config ({err})") from None
    dev = pick_device(device)
    backbone, dim = build_backbone(cfg.backbone, cfg.image_size)
    num_classes = len(loaders.build_loader(cfg.loader, data_splits(cfg.data)[0], batch_size=1,
                                           image_size=cfg.image_size).classes)
    trainer = Trainer(backbone, build_method(cfg.method, dim, cfg, num_classes))
    trainer.method.setup(backbone)
    trainer.load_state_dict(state["trainer"])
    backbone.to(dev)
    plain = augpipe.build_policy("none", size=cfg.image_size, views=1, normalize=NORMALIZE)
    train_src, test_src = data_splits(cfg.data)
    common = dict(batch_size=512, image_size=cfg.image_size, device=dev, shuffle=False,
                  num_workers=cfg.num_workers, seed=cfg.seed)
    train_f, train_y = extract(backbone, loaders.build_loader(cfg.loader, train_src, subset=cfg.train_subset or None,
                                                              **common), lambda x: plain(x)[0], dev)
    test_loader = loaders.build_loader(cfg.loader, test_src, **common)
    test_f, test_y = extract(backbone, test_loader, lambda x: plain(x)[0], dev)
    top1 = linear_eval(train_f, train_y, test_f, test_y, len(test_loader.classes), epochs=epochs, lr=lr,
                       seed=cfg.seed)
    result = {"linear_eval_top1": top1, "epochs": epochs, "lr": lr, "checkpoint_epoch": state["epoch"] + 1,
              "train_images": int(train_f.shape[0]), "test_images": int(test_f.shape[0])}
    write_json(result, run / "linear_eval.json")
    return result


def main(argv: list[str] | None = None) -> int:
    class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        pass
    parser = ArgumentParser(prog="python -m ssl_train.linear_eval", description=__doc__,
                                     formatter_class=Formatter)
    parser.add_argument("--run", type=Path, required=True, help="the --out folder of a training run")
    parser.add_argument("--epochs", type=int, default=100, help="full-batch steps over the frozen features")
    parser.add_argument("--lr", type=float, default=1e-2, help="learning rate of the linear classifier")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to extract features")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs: must be >= 1, got {args.epochs}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        parser.error(f"--lr: must be a finite number > 0, got {args.lr}")
    try:
        result = evaluate_run(args.run, args.epochs, args.lr, args.device)
    except (CheckpointError, DatasetError, RunError, OSError) as err:  # DatasetError, RunError: its data moved
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"linear evaluation top-1 {result['linear_eval_top1']:.4f} "
          f"({result['train_images']} train / {result['test_images']} test images); wrote {args.run}/linear_eval.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
