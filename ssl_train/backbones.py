"""Backbones by name: a small ConvNet for 2-core CPUs, torchvision's ResNet-18/50, and any model of
timm (`timm:NAME`) or torchvision (`torchvision:NAME`), with keyword arguments in brackets:
`timm:vit_small_patch16_224(drop_path_rate=0.1)`.

Each builder returns `(module, feature_dim)`; the module maps `[N,3,H,W]` to `[N, feature_dim]`
(the library's classifier removed). Small images get a courtesy, unless the user passes the
arguments it sets:
- ResNets (built-in, torchvision's or timm's) at 64 px or less get the usual CIFAR stem (3x3
  stride-1 first conv, no max pool), as in SimCLR's CIFAR experiments: the ImageNet stem would
  shrink 32 px to 8 px at once;
- a timm ViT gets `img_size` from `--image-size`, `dynamic_img_size=True` (multi-crop's smaller
  views interpolate the position embedding) and, at 64 px or less, `patch_size = image_size / 8`
  (an 8 x 8 grid of patches: 4 px patches at 32 px).
"""
from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field

import torch
import torch.nn as nn

SMALL_IMAGE = 64  # px: at or below, the small-image rules above apply
LIBRARIES = ("timm", "torchvision")


@dataclass
class BackboneSpec:
    """A `--backbone` value read: the library (None for a built-in name), the model's name and
    the keyword arguments it is built with (the user's, then the small-image defaults)."""
    library: str | None
    name: str
    kwargs: dict = field(default_factory=dict)
    cifar_stem: bool = False

    def describe(self) -> dict:
        return {"library": self.library, "name": self.name, "kwargs": self.kwargs, "cifar_stem": self.cifar_stem}


def small_convnet(image_size: int, width: int = 32):
    """Four conv-BN-ReLU blocks (32-64-128-256 channels, ~0.39M parameters), global average pool."""
    layers, cin = [], 3
    for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        if i < 3:
            layers.append(nn.MaxPool2d(2))
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), cin


BACKBONES = {"small": small_convnet}  # built here; the other names are the libraries' (ALIASES)
ALIASES = {"resnet18": "torchvision:resnet18", "resnet50": "torchvision:resnet50"}


def _kwargs(text: str, spec: str) -> dict:
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        if not isinstance(call, ast.Call) or call.args:
            raise ValueError
        return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError, TypeError):
        raise ValueError(f"--backbone {spec}: expected NAME(key=value, ...) with Python literals as values") from None


def parse_backbone(spec: str) -> BackboneSpec:
    """`small`, `timm:NAME`, `torchvision:NAME`, each library name optionally with `(key=value, ...)`."""
    if spec in BACKBONES:
        return BackboneSpec(None, spec)
    spec = ALIASES.get(spec, spec)
    match = re.fullmatch(r"\s*(\w+):([\w.\-]+)\s*(?:\((.*)\))?\s*", spec, flags=re.S)
    if not match or match.group(1) not in LIBRARIES:
        raise ValueError(f"--backbone {spec}: expected one of {', '.join([*BACKBONES, *ALIASES])}, timm:NAME or torchvision:NAME")
    library, name, args = match.groups()
    return BackboneSpec(library, name, _kwargs(args, spec) if args and args.strip() else {})


def _is_vit(entrypoint) -> bool:
    """A timm model built by the VisionTransformer class (whose img_size and patch_size we set)."""
    return entrypoint.__module__.rsplit(".", 1)[-1] in ("vision_transformer", "deit")


def _known(names: list[str], name: str, library: str, spec: str) -> None:
    if name not in names:
        near = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise ValueError(f"--backbone {spec}: {library} has no model {name!r}{hint}")


def resolve_backbone(spec: str, image_size: int) -> BackboneSpec:
    """The backbone `spec` names, with the keyword arguments it will be built with; raises
    ValueError in one line naming `--backbone` for an unknown name."""
    parsed = parse_backbone(spec)
    if parsed.library == "timm":
        import timm
        _known(timm.list_models(), parsed.name, "timm", spec)
        parsed.kwargs = {**parsed.kwargs, "num_classes": 0}
        if _is_vit(timm.models.model_entrypoint(parsed.name)):
            parsed.kwargs.setdefault("img_size", image_size)
            parsed.kwargs.setdefault("dynamic_img_size", True)
            if image_size <= SMALL_IMAGE:
                parsed.kwargs.setdefault("patch_size", max(1, image_size // 8))
    elif parsed.library == "torchvision":
        import torchvision
        _known(torchvision.models.list_models(), parsed.name, "torchvision", spec)
    return parsed


def _cifar_stem(net: nn.Module, image_size: int) -> bool:
    """Swap a ResNet's ImageNet stem for the CIFAR one at small sizes; True if it did."""
    conv = getattr(net, "conv1", None)
    if image_size > SMALL_IMAGE or type(net).__name__ != "ResNet" or not isinstance(conv, nn.Conv2d) \
            or not hasattr(net, "maxpool"):
        return False
    net.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return True


def _strip_head(net: nn.Module, image_size: int) -> int:
    """Replace a torchvision model's classifier by the identity; returns the feature width."""
    for attr in ("fc", "classifier", "heads", "head"):
        if isinstance(getattr(net, attr, None), nn.Module):
            setattr(net, attr, nn.Identity())
            break
    else:
        raise ValueError(f"--backbone torchvision:{type(net).__name__}: found no classifier (fc, classifier, heads) "
                         "to remove")
    was = net.training
    with torch.no_grad():
        dim = net.eval()(torch.zeros(1, 3, image_size, image_size)).flatten(1).shape[1]
    net.train(was)
    return dim


def build_backbone(spec: str, image_size: int):
    """`(module, feature_dim)` for a `--backbone` value at `image_size` px."""
    module, dim, _ = build_backbone_spec(spec, image_size)
    return module, dim


def build_backbone_spec(spec: str, image_size: int):
    """`(module, feature_dim, BackboneSpec)`: the module and what it was built from."""
    parsed = resolve_backbone(spec, image_size)
    if parsed.library is None:
        module, dim = BACKBONES[parsed.name](image_size)
        return module, dim, parsed
    if parsed.library == "timm":
        import timm
        net = timm.create_model(parsed.name, pretrained=False, **parsed.kwargs)
        parsed.cifar_stem = _cifar_stem(net, image_size)
        return net, net.num_features, parsed
    import torchvision
    net = torchvision.models.get_model(parsed.name, weights=None, **parsed.kwargs)
    parsed.cifar_stem = _cifar_stem(net, image_size)
    return net, _strip_head(net, image_size), parsed
