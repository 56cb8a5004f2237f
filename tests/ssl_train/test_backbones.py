"""Backbones by name: built-ins, timm:NAME and torchvision:NAME with keyword arguments, the
small-image rules (CIFAR stem, a ViT's patch and image size), mixed resolutions, bad names."""
import pytest
import torch

from ssl_train.backbones import build_backbone, build_backbone_spec, parse_backbone, resolve_backbone
from ssl_train.config import TrainConfig


def test_library_names_and_keyword_arguments_are_read():
    spec = parse_backbone("timm:vit_small_patch16_224(drop_path_rate=0.1, qkv_bias=False)")
    assert (spec.library, spec.name, spec.kwargs) == ("timm", "vit_small_patch16_224",
                                                      {"drop_path_rate": 0.1, "qkv_bias": False})
    assert parse_backbone("torchvision:resnet18").kwargs == {} and parse_backbone("small").library is None


@pytest.mark.parametrize("value, message", [
    ("timm:vit_tiny_patch16_22", "--backbone timm:vit_tiny_patch16_22: timm has no model 'vit_tiny_patch16_22'; "
                                 "did you mean vit_tiny_patch16_224"),
    ("torchvision:resnet19", "--backbone torchvision:resnet19: torchvision has no model 'resnet19'; did you mean"),
    ("keras:resnet50", "--backbone keras:resnet50: expected one of small, resnet18, resnet50, timm:NAME or torchvision:NAME"),
    ("timm:resnet18(3)", "--backbone timm:resnet18(3): expected NAME(key=value, ...) with Python literals as values"),
    ("timm:resnet18(depth=os.system)", "--backbone timm:resnet18(depth=os.system): expected NAME(key=value, ...) "
                                       "with Python literals"),
])
def test_a_bad_backbone_is_one_line_naming_the_flag(value, message):
    import re
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        TrainConfig(backbone=value).validate()


def test_a_timm_vit_at_small_sizes_gets_its_patch_and_image_size_unless_given():
    spec = resolve_backbone("timm:vit_tiny_patch16_224", 32)
    assert spec.kwargs == {"num_classes": 0, "img_size": 32, "dynamic_img_size": True, "patch_size": 4}
    given = resolve_backbone("timm:vit_tiny_patch16_224(patch_size=8, img_size=40)", 32)
    assert given.kwargs["patch_size"] == 8 and given.kwargs["img_size"] == 40
    large = resolve_backbone("timm:vit_tiny_patch16_224", 128)
    assert "patch_size" not in large.kwargs and large.kwargs["img_size"] == 128
    assert resolve_backbone("timm:resnet18", 32).kwargs == {"num_classes": 0}  # not a ViT


def test_a_timm_vit_takes_two_crop_sizes_and_gives_its_feature_width():
    net, dim, spec = build_backbone_spec("timm:vit_tiny_patch16_224(depth=2)", 32)
    assert dim == 192 and net.patch_embed.patch_size == (4, 4)
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 192)
        assert net(torch.randn(3, 3, 16, 16)).shape == (3, 192)  # a local crop: 4 x 4 patches


@pytest.mark.parametrize("value", ["timm:resnet18", "torchvision:resnet18", "resnet18"])
def test_resnets_from_every_library_get_the_cifar_stem_at_small_sizes(value):
    net, dim, spec = build_backbone_spec(value, 32)
    assert dim == 512 and spec.cifar_stem
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and isinstance(net.maxpool, torch.nn.Identity)
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    big, _, big_spec = build_backbone_spec(value, 96)
    assert not big_spec.cifar_stem and big.conv1.kernel_size == (7, 7)


def test_a_torchvision_model_loses_its_classifier():
    net, dim = build_backbone("torchvision:mobilenet_v3_small", 32)
    assert dim == 576
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 576)


def test_the_builtin_resnet_keeps_its_initialisation():
    """resnet18 is torchvision:resnet18 with the CIFAR stem: the same draws as before (results
    of earlier runs stay comparable)."""
    import torchvision
    torch.manual_seed(0)
    ours, _ = build_backbone("resnet18", 32)
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None)
    ref.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    ref.fc = torch.nn.Identity()
    ref.maxpool = torch.nn.Identity()
    for (name, a), (_, b) in zip(ours.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), name
