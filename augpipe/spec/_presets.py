"""Named policies, written as spec strings so that a preset and a custom spec are the same thing.

Each entry cites its source recipe. `|` separates asymmetric view chains (view 1 | view 2).
User code adds its own with `augpipe.register_preset(name, spec)`.
"""
from __future__ import annotations

PRESETS: dict[str, str] = {
    # SimCLR (Chen et al. 2020, appendix A): crop 0.08-1, flip, colour distortion of strength 1
    # (0.8, 0.8, 0.8, 0.2) with p=0.8, grayscale p=0.2, blur p=0.5 with sigma 0.1-2.
    "simclr": "rrc(scale=0.08:1)+flip+jitter(0.8,0.8,0.8,0.2,p=0.8)+gray(p=0.2)+blur(sigma=0.1:2,p=0.5)",
    # SimCLR's CIFAR-10 recipe for small images (Chen et al. 2020, appendix B.9): colour strength 0.5
    # (0.4, 0.4, 0.4, 0.1), no blur; crops 0.2-1 as solo-learn's CIFAR configs (measured on CIFAR-10,
    # 20k images, 6 epochs, small ConvNet, 3 seeds: kNN 0.517 +- 0.008 at SimCLR temperature 0.2 and
    # 0.527 +- 0.010 at 0.1, vs 0.474 for `simclr`; experiments/results/README.md).
    "simclr-cifar": "rrc(scale=0.2:1)+flip+jitter(0.4,0.4,0.4,0.1,p=0.8)+gray(p=0.2)",
    # BYOL (Grill et al. 2020, table 6): asymmetric blur (1.0 / 0.1) and solarize (0 / 0.2).
    "byol": ("rrc(scale=0.08:1)+flip+jitter(0.4,0.4,0.2,0.1,p=0.8)+gray(p=0.2)+blur(sigma=0.1:2,p=1.0)"
             " | rrc(scale=0.08:1)+flip+jitter(0.4,0.4,0.2,0.1,p=0.8)+gray(p=0.2)+blur(sigma=0.1:2,p=0.1)"
             "+solarize(p=0.2)"),
    # VICReg (Bardes et al. 2022, appendix C.1) uses BYOL's recipe: same asymmetric pair.
    "vicreg": ("rrc(scale=0.08:1)+flip+jitter(0.4,0.4,0.2,0.1,p=0.8)+gray(p=0.2)+blur(sigma=0.1:2,p=1.0)"
               " | rrc(scale=0.08:1)+flip+jitter(0.4,0.4,0.2,0.1,p=0.8)+gray(p=0.2)+blur(sigma=0.1:2,p=0.1)"
               "+solarize(p=0.2)"),
    # Small-image (32 px) siblings of `byol` and `vicreg`, as solo-learn's CIFAR configs
    # (scripts/pretrain/cifar): no blur, which at 32 px mostly erases the image. BYOL keeps its crops
    # and its asymmetric solarize (0 / 0.2); VICReg's CIFAR pair is symmetric, crops 0.2-1, solarize 0.1.
    "byol-cifar": ("rrc(scale=0.08:1)+flip+jitter(0.4,0.4,0.2,0.1,p=0.8)+gray(p=0.2)"
                   " | rrc(scale=0.08:1)+flip+jitter(0.4,0.4,0.2,0.1,p=0.8)+gray(p=0.2)+solarize(p=0.2)"),
    "vicreg-cifar": "rrc(scale=0.2:1)+flip+jitter(0.4,0.4,0.2,0.1,p=0.8)+gray(p=0.2)+solarize(p=0.1)",
    # Bordes et al. 2023: the positive pair is the same image with two independent noise draws.
    "noise": "noise(std=0.1)",
    "crop": "rrc(scale=0.08:1)+flip",
    "crop-gray": "rrc(scale=0.08:1)+flip+gray(p=0.2)",
    "none": "identity",
    # Supervised recipes of torchvision's reference scripts, for cost comparisons (make bench-aug):
    # timm-style RandAugment (RandomResizedCrop + flip + RandAugment(2, 9) + RandomErasing(0.25)),
    # and TrivialAugmentWide after the same crop and flip.
    "timm-ra": "rrc(scale=0.08:1)+flip+rand_augment(2,9)+erasing(p=0.25)",
    "trivialaugment": "rrc(scale=0.08:1)+flip+trivial_augment",
    # The CIFAR-10 recipe of the AutoAugment paper (Cubuk et al. 2019): RandomCrop(32, padding=4),
    # flip, then the learned CIFAR10 policy; the crop keeps the input size, so at 32 px it is that
    # recipe exactly (the paper adds Cutout after it).
    "cifar-aa": "rcrop(4)+flip+auto_augment(cifar10)",
}
