"""A segmentation script whose torchvision pipeline moves onto the batch, masks and all.

The workers only decode; `augpipe.from_torchvision(train_transform)` then runs the same pipeline
on each batch on the training device, every image with its own crop, flip and rotation, and its
mask moved with exactly those parameters (nearest, as torchvision moves a `tv_tensors.Mask`):

    images, targets = policy(images, masks=masks, generator=g)   # targets.masks: [N, h, w]

The task, at toy size: segment the strokes of the embedded digits (mask: pixels above 1/2),
while colour jitter changes how bright they look. On the CPU:
    python examples/segmentation_dropin.py --steps 40
and on a GPU with `--device cuda`.
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

import augpipe
from loaders.sources.datasets import materialize

train_transform = v2.Compose([
    v2.RandomResizedCrop(32, scale=(0.5, 1.0)), v2.RandomHorizontalFlip(), v2.RandomRotation(15),
    v2.ColorJitter(0.4, 0.4, 0.4), v2.ToDtype(torch.float32, scale=True),
])


def main(argv=None) -> float:
    """Train for `--steps`; returns the last batch's foreground IoU."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (decoding only)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    dataset = ImageFolder(materialize("digits"), transform=v2.ToImage())
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True)
    policy = augpipe.from_torchvision(train_transform)
    g = torch.Generator(device=device).manual_seed(args.seed)

    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 2, 1)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    step, iou = 0, float("nan")
    while step < args.steps:
        for images, _ in loader:
            images = images.to(device)
            masks = (images[:, 0] > 128).long()  # the strokes, before any augmentation
            images, targets = policy(images, masks=masks, generator=g)  # the mask follows each image's geometry
            logits = model(images)
            loss = F.cross_entropy(logits, targets.masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            predicted, truth = logits.argmax(1) == 1, targets.masks == 1
            iou = ((predicted & truth).sum() / (predicted | truth).sum().clamp(min=1)).item()
            step += 1
            if step == args.steps:
                break
    print(f"{step} steps, last loss {loss.item():.3f}, foreground IoU {iou:.2f}")
    return iou


if __name__ == "__main__":
    main()
