"""Backbones by name: torchvision ResNet-18/50 and a small ConvNet for 2-core CPUs.

Each builder returns `(module, feature_dim)`; the module maps `[N,3,H,W]` to `[N, feature_dim]`.
For inputs of 64 px or less, ResNets get the usual CIFAR stem (3x3 stride-1 first conv, no max
pool), as in SimCLR's CIFAR experiments: the ImageNet stem would shrink 32 px to 8 px at once.
"""
from __future__ import annotations

import torch.nn as nn


def _resnet(name: str, image_size: int):
    import torchvision
    net = getattr(torchvision.models, name)(weights=None)
    if image_size <= 64:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


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


BACKBONES = {
    "small": small_convnet,
    "resnet18": lambda image_size: _resnet("resnet18", image_size),
    "resnet50": lambda image_size: _resnet("resnet50", image_size),
}


def build_backbone(name: str, image_size: int):
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONES)}")
    return BACKBONES[name](image_size)
