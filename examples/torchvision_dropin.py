"""A plain supervised training script, moved from a torchvision pipeline in the DataLoader workers
to `augpipe.from_torchvision` on the device. The lines marked `# was:` are all that changed:

    - the workers only decode (`ToImage`: uint8 tensors of one size, so they batch);
    - the same `train_transform` runs on each batch, on the training device, with its own random
      parameters for every image (`augpipe.Augment`: an nn.Module, seeded).

Runs on the CPU at toy size on the embedded digits dataset (no download):
    python examples/torchvision_dropin.py --steps 20
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
    v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.TrivialAugmentWide(),
    v2.ToDtype(torch.float32, scale=True), v2.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
])


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (decoding only)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    # was: dataset = ImageFolder(materialize("digits"), transform=train_transform)
    dataset = ImageFolder(materialize("digits"), transform=v2.ToImage())
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True)
    augment = augpipe.Augment(augpipe.from_torchvision(train_transform), seed=args.seed).to(device)  # new

    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(64, 10)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step, loss = 0, torch.tensor(float("nan"))
    while step < args.steps:
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            images = augment(images)  # new: the pipeline, per image, on the batch
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == args.steps:
                break
    print(f"{step} steps, last loss {loss.item():.3f}")
    return loss.item()


if __name__ == "__main__":
    main()
