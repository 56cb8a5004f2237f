"""`python -m ssl_train.export --run DIR --out backbone.safetensors`: a run's trained backbone for
downstream code, as data only.

The weights go into a safetensors file (no pickle: loading it cannot run code), beside it a JSON
file of what they are (the same name, `.json`): the backbone's name and image size (so
`ssl_train.backbones.build_backbone(name, image_size)` makes the module they load into, strictly),
its library, model name and keyword arguments (a timm backbone's weights load into
`timm.create_model(model, **kwargs)`; `cifar_stem` says a ResNet's stem was swapped for small images),
the method, the epochs trained and the run's kNN accuracy. `--teacher` exports the momentum
teacher instead, for the methods that have one (BYOL's target network, MoCo v3's momentum encoder,
DINO's teacher). Both files are written
atomically; the run is only read.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from _augpipe_shared.atomicio import WriteError, atomic_write, write_json
from _augpipe_shared.cli import ArgumentParser
from ssl_train.checkpoint import CheckpointError, load_checkpoint

# where each kind of weights sits in the trainer's state dict (ssl_train.parts.Trainer)
PREFIXES = {"backbone": "backbone.", "teacher": "method.target_backbone."}


class ExportError(ValueError):
    """A run that cannot be exported as asked; the message names the run and the reason."""


def _built_from(cfg: dict, weights: dict) -> dict:
    """What the backbone is built from (`ssl_train.backbones.BackboneSpec.describe`), checked by
    loading the weights into a fresh one, strictly: the description is the module they fit."""
    from ssl_train.backbones import build_backbone_spec
    module, _, spec = build_backbone_spec(cfg["backbone"], cfg["image_size"])
    module.load_state_dict(weights, strict=True)
    return spec.describe()


def export(run: Path, out: Path, teacher: bool = False) -> dict:
    """Write the run's backbone (or teacher) weights to `out` and their description next to it.

    Returns:
        The description written to `out.with_suffix(".json")`.
    """
    from safetensors.torch import save_file
    run, out = Path(run), Path(out)
    if out.suffix != ".safetensors":
        raise ExportError(f"--out {out}: expected a file name ending in .safetensors")
    state = load_checkpoint(run / "checkpoint.pt")  # weights_only: a crafted file cannot run code
    kind = "teacher" if teacher else "backbone"
    prefix = PREFIXES[kind]
    weights = {key[len(prefix):]: value.contiguous() for key, value in state["trainer"].items()
               if key.startswith(prefix)}
    cfg = state["config"]
    if not weights:
        raise ExportError(f"--run {run}: its method ({cfg.get('method')}) has no {kind} to export"
                          + ("; export the backbone (without --teacher)" if teacher else ""))
    library = _built_from(cfg, weights)
    result_path = run / "result.json"
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    about = {"weights": kind, "backbone": cfg["backbone"], "library": library["library"], "model": library["name"],
             "kwargs": library["kwargs"], "cifar_stem": library["cifar_stem"], "image_size": cfg["image_size"],
             "method": cfg["method"],
             "epochs_trained": state["epoch"] + 1, "knn_top1": result.get("knn_top1"),
             "knn_top1_random_init": result.get("knn_top1_random_init"), "finished": bool(result),
             "run": str(run.resolve()), "tensors": len(weights)}
    metadata = {key: json.dumps(value) for key, value in about.items()}  # safetensors metadata: strings
    atomic_write(out, lambda tmp: save_file(weights, tmp, metadata=metadata))
    write_json(about, out.with_suffix(".json"))
    return about


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m ssl_train.export", description=__doc__)
    parser.add_argument("--run", type=Path, required=True, help="the --out folder of a training run")
    parser.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    parser.add_argument("--teacher", action="store_true", help="the momentum teacher (BYOL, MoCo v3, DINO) instead of the backbone")
    args = parser.parse_args(argv)
    try:
        about = export(args.run, args.out, teacher=args.teacher)
    except (CheckpointError, ExportError, WriteError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({about['tensors']} tensors: the {about['weights']} of a {about['method']} run, "
          f"{about['backbone']} at {about['image_size']} px) and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
