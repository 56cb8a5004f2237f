"""`python -m ssl_train`: the command line over `TrainConfig` (every field is a flag)."""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from _augpipe_shared.cli import ArgumentParser
from _augpipe_shared.plugins import add_plugin_flag, load_plugins
from ssl_train.config import TrainConfig
from ssl_train.runconfig import ConfigFileError, read_config

HELP = {
    "data": "digits (embedded), a dataset name (cifar10, cifar100, stl10: downloaded once into the cache), an "
            "archive (.tar, .tar.gz, .tgz, .zip) of a dataset, or a folder with train/ and test/ (ImageFolders or "
            "folders of WebDataset shards)",
    "loader": "loader backend",
    "train_subset": "train on a seeded random subset of this many images (0 = all); kNN uses the same subset",
    "test_subset": "evaluate on a random subset of this many test images, the same for every seed (0 = all)",
    "policy": "augmentation: a preset ({presets}), with optional [op.key=value] overrides, "
              "or a spec string like 'rrc(scale=0.2:1)+flip+noise(std=0.05)'",
    "aug_engine": "engine that runs the policy (augpipe: ours, eager on CPU and compiled on CUDA); "
                  "the same semantics on each, at its own cost",
    "views": "number of views, or multi-crop '2x32+4x16@0.05:0.14' (COUNTxSIZE[@crop-scale])",
    "method": "JE-SSL method; supervised trains a labelled reference (the ceiling)",
    "negatives": "SimCLR negatives per anchor: 'all' (2N-2) or K drawn uniformly from other images' views; 1 = single negative",
    "temperature": "InfoNCE softmax temperature (SimCLR, MoCo v3)",
    "proj_hidden": "projector hidden width", "proj_dim": "projector output width",
    "proj_layers": "projector depth (linear layers)",
    "ema": "base momentum of the teacher (BYOL's target, MoCo v3's momentum encoder, DINO's teacher), "
           "cosine-increased to 1",
    "barlow_lambda": "Barlow Twins off-diagonal weight",
    "backbone": "small (a 4-layer ConvNet, CPU-friendly), resnet18, resnet50, timm:NAME or torchvision:NAME, with "
                "keyword arguments as timm:NAME(key=value, ...); ResNets use the CIFAR stem at <= 64 px, timm ViTs "
                "get img_size and a patch of image-size/8",
    "image_size": "side of loaded images and views (px)",
    "batch_size": "global batch size (split over DDP processes)",
    "epochs": "training epochs",
    "optimizer": "optimiser (lars: SGD with layer-wise trust ratios, as SimCLR/BYOL)",
    "lr": "base learning rate (scaled by --lr-scaling with batch/256)",
    "lr_scaling": "lr scaling rule with batch size (x B/256, x sqrt(B/256), or none)",
    "weight_decay": "weight decay", "momentum": "SGD/LARS momentum",
    "warmup_epochs": "linear warm-up epochs before the cosine decay",
    "knn_k": "k of the weighted kNN evaluation", "knn_temperature": "kNN vote temperature",
    "probe_lr": "online linear probe learning rate",
    "eval_every": "run kNN every N epochs (always at the end)",
    "check_every": "read the loss back (the hot path's one host read) every N steps and at epoch end; "
                   "a non-finite loss stops the run, naming the step range",
    "device": "where to train (auto: CUDA when available)",
    "precision": "bf16 runs the model under autocast",
    "channels_last": "channels_last memory format for views and backbone",
    "compile": "torch.compile the model",
    "num_workers": "loader workers",
    "cpu_threads": "intra-op threads on the CPU, fixed for the run (0: OMP_NUM_THREADS if set, else the cores the "
                   "loader workers leave free)",
    "aug_threads": "intra-op threads of the augmentation on the CPU, switched to around each policy call (0: as "
                   "--cpu-threads); one thread has no partner to wait for when other processes share the cores",
    "checkpoint_every": "minutes between step checkpoints, so a kill loses at most that much work (0: at epoch "
                        "ends only); SIGTERM, SIGUSR1 and Ctrl-C always checkpoint the step they stop at",
    "logger": "tensorboard: write loss, lr, kNN, probe and the time account as TensorBoard scalars into "
              "OUT/tensorboard (rank 0; log.csv is written either way)",
    "seed": "seed of every random choice (data order, augmentation, init)",
    "out": "output folder (config.json, log.csv, checkpoint.pt, result.json)",
}


def _help(name: str) -> str:
    from augpipe import list_policies
    return HELP[name].format(presets=", ".join(list_policies()))  # names from the registry, not by hand


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m ssl_train",
                                     description="Train a JE-SSL model and account for augmentation cost vs accuracy.")
    add_plugin_flag(parser)
    for f in fields(TrainConfig):
        if f.name == "method_options":  # one flag per option instead (add_method_options)
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=_help(f.name))
        else:
            kind = {"int": int, "float": float}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
            choices = TrainConfig.CHOICES.get(f.name)
            choices = list(choices) if choices is not None else None
            parser.add_argument(flag, type=kind, default=f.default, choices=choices,
                                help=f"{_help(f.name)} (default: {f.default})")
    add_method_options(parser)
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="a run config (.yaml, .yml or .json) of these options; flags given here override it "
                             "(every run writes its resolved config.json, and config.yaml for a YAML config)")
    parser.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--requeue", action="store_true",
                        help="under SLURM: after a SIGTERM or SIGUSR1 checkpoint, scontrol requeue $SLURM_JOB_ID")
    return parser


def _dest(method: str, name: str) -> str:
    return f"method_option:{method}:{name}"


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """`--METHOD.OPTION` for every option of every registered method (its `Options`)."""
    from ssl_train.methods import METHODS, options
    for method, cls in METHODS.items():
        found = options.option_fields(cls.Options)
        if not found:
            continue
        group = parser.add_argument_group(f"--method {method} options")
        for f in found:
            parse = lambda text, d=f.default: options.parse_value(text, d)
            parse.__name__ = type(f.default).__name__  # argparse's "invalid float value: 'x'"
            group.add_argument(options.flag(method, f.name), dest=_dest(method, f.name), default=None, type=parse,
                               metavar=type(f.default).__name__.upper(),
                               help=f"{f.metadata.get('help', '')} (default: {f.default})")


def method_options(args: argparse.Namespace, method: str, from_file: dict) -> dict:
    """The chosen method's options: the --config file's `method_options`, then the flags given.
    Raises ValueError for a flag of another method."""
    from ssl_train.methods import options
    chosen = dict(from_file)
    for key, value in vars(args).items():
        if not key.startswith("method_option:") or value is None:
            continue
        _, owner, name = key.split(":")
        if owner != method:
            raise ValueError(f"{options.flag(owner, name)} applies to --method {owner} only (this run: --method {method})")
        chosen[name] = value
    return chosen


def main(argv: list[str] | None = None) -> int:
    load_plugins(argv, "python -m ssl_train")  # before the registries become the flags' choices
    parser = build_parser()
    config_format, file_options = "json", {}
    given, _ = parser.parse_known_args(argv)  # --config first: its values are the flags' defaults
    if given.config is not None:
        try:
            from_file, config_format = read_config(given.config)
        except ConfigFileError as err:
            parser.error(str(err))
        file_options = from_file.pop("method_options", {})
        parser.set_defaults(**from_file)
    args = parser.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "method_options"}
    cfg = TrainConfig(**values)
    try:
        cfg.method_options = method_options(args, cfg.method, file_options)
        cfg.validate()
    except ValueError as err:
        parser.error(str(err))
    if args.resume and args.overwrite:
        parser.error("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    from augpipe import SpecError
    from augpipe.interop.engines import Unsupported
    from ssl_train.loop import NonFiniteLoss, Preempted, RunError, summary, train
    from ssl_train.preempt import resume_command
    try:
        result = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                       requeue=args.requeue, config_format=config_format)
    except Preempted as stop:  # a signal: the checkpoint is written, the message says how to resume
        print(stop.with_resume(resume_command(sys.argv[1:] if argv is None else argv)), file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C: no checkpoint of this step
        last = Path(cfg.out) / "checkpoint.pt"
        kept = f"the last checkpoint is {last}" if last.exists() else "no checkpoint was written"
        print(f"\ninterrupted at once ({kept}); --resume continues from it", file=sys.stderr)
        return 130
    except NonFiniteLoss as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except (RunError, SpecError, Unsupported, ValueError, OSError) as err:  # bad input, or a path that cannot be used
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result is not None:
        print(summary(result))
        print(f"wrote {cfg.out}/result.json")
    return 0
