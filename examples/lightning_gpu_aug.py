"""SimCLR in PyTorch Lightning, augmenting on the device in `on_after_batch_transfer`.

The DataLoader workers only decode (uint8 tensors); Lightning moves each batch to the device, then
`on_after_batch_transfer` turns it into two views with an augpipe policy, every image with its own
random parameters. The policy is an `augpipe.Augment` module (no parameters, so `.to(device)`,
DDP and checkpoints pass it by); each rank seeds its own draws. `--negatives 1` is the
single-negative SimCLR of Bordes et al. (2023).

Runs on the CPU at toy size on the embedded digits dataset (no download):
    python examples/lightning_gpu_aug.py --steps 20
and on a GPU with `--accelerator gpu`.
"""
import argparse

import lightning as L
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

import augpipe
from loaders.sources.datasets import materialize
from ssl_train.methods.simclr import info_nce


class SimCLR(L.LightningModule):
    def __init__(self, policy: str = "simclr-cifar", size: int = 32, negatives: int | None = None,
                 temperature: float = 0.2, lr: float = 0.05, seed: int = 0):
        super().__init__()
        self.augment = augpipe.Augment(augpipe.build_policy(policy, size=size, views=2, normalize="cifar10"), seed=seed)
        self.backbone = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.projector = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
        self.negatives, self.temperature, self.lr = negatives, temperature, lr
        self.seen_views: list[tuple] = []  # (count, shape, dtype) of what training_step received

    def setup(self, stage: str) -> None:
        self.augment.rank = self.global_rank  # every DDP rank draws its own parameters

    def on_after_batch_transfer(self, batch, dataloader_idx):
        images, labels = batch  # uint8 [N, 3, H, W], already on self.device
        return (self.augment(images) if self.trainer.training else images), labels

    def training_step(self, batch, batch_idx):
        views, _ = batch
        self.seen_views.append((len(views), tuple(views[0].shape), views[0].dtype))
        loss = info_nce([self.projector(self.backbone(v)) for v in views], self.temperature, self.negatives)
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--negatives", type=int, default=None, help="negatives per anchor (default: all)")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (decoding only)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    L.seed_everything(args.seed, verbose=False)
    data = ImageFolder(materialize("digits"), transform=v2.ToImage())  # decode only
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True)
    model = SimCLR(negatives=args.negatives, seed=args.seed)
    trainer = L.Trainer(max_steps=args.steps, accelerator=args.accelerator, devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, loader)
    print(f"{trainer.global_step} steps, last loss {float(trainer.callback_metrics['loss']):.3f}")
    return model, trainer


if __name__ == "__main__":
    main()
