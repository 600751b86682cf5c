"""Q2: fine-tune ResNet-18 on PASCAL VOC.

    python train_q2.py --data-dir data/VOCdevkit/VOC2007 --weights resnet18-f37072fd.pth

Nothing is downloaded: the ImageNet weights (torchvision's ``IMAGENET1K_V1``
file ``resnet18-f37072fd.pth``) are read from ``--weights`` or from torch's hub
cache; without them the script stops with a message (``--from-scratch`` trains
from a random initialisation instead). The seed's target, mAP about 0.8 in 50
epochs, needs the real VOC2007 and a GPU.
"""

from __future__ import annotations

import argparse
import os
import random

import numpy as np
import torch
import torch.nn as nn
import torchvision
import trainer
from utils import ARGS
from voc_dataset import VOCDataset

DEFAULT_WEIGHTS = os.path.join(os.path.expanduser("~"), ".cache", "torch", "hub", "checkpoints",
                               "resnet18-f37072fd.pth")


class ResNet(nn.Module):
    """torchvision's ResNet-18 with a new ``num_classes``-way head.

    Args:
        num_classes (int): outputs of the new head.
        weights_path (str | None): a local file holding a torchvision
            ``resnet18`` state dict (ImageNet weights). Every layer but the
            head takes its weights from it (all keys must match); the head is a
            fresh ``nn.Linear(512, num_classes)``. None keeps torchvision's
            random initialisation. Nothing is ever downloaded.
        freeze_backbone (bool): when True only the head's parameters require
            gradients.

    Attributes:
        resnet (torchvision.models.ResNet): the network; ``resnet.fc`` is the head.

    Raises:
        FileNotFoundError: when ``weights_path`` is given but does not exist;
            the message names the path and says how to get the file.
    """

    def __init__(self, num_classes, weights_path=None, freeze_backbone=False) -> None:
        super().__init__()
        raise NotImplementedError("TODO: ResNet.__init__")

    def forward(self, x):
        """Logits Tensor[N, num_classes] of images Tensor[N, 3, H, W] (unnormalised, no sigmoid)."""
        raise NotImplementedError("TODO: ResNet.forward")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data/VOCdevkit/VOC2007/")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="local resnet18 ImageNet state dict")
    parser.add_argument("--from-scratch", action="store_true", help="train without ImageNet weights")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--step-size", type=int, default=10)
    parser.add_argument("--gamma", type=float, default=0.5)
    parser.add_argument("--inp-size", type=int, default=224)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--num-workers", type=int, default=4)
    parser.add_argument("--log-dir", default=None)
    parser.add_argument("--cuda", action="store_true", help="train on the GPU")
    options = parser.parse_args(argv)

    np.random.seed(0)
    torch.manual_seed(0)
    random.seed(0)

    weights = None if options.from_scratch else options.weights
    if weights is not None and not os.path.isfile(weights):
        parser.exit(2, f"No ResNet-18 ImageNet weights at {weights!r}. Pass --weights PATH to a local copy of "
                       "resnet18-f37072fd.pth, or --from-scratch.\n")
    args = ARGS(epochs=options.epochs, inp_size=options.inp_size, use_cuda=options.cuda, val_every=options.val_every,
                lr=options.lr, batch_size=options.batch_size, step_size=options.step_size, gamma=options.gamma,
                save_at_end=True, data_dir=options.data_dir, num_workers=options.num_workers,
                log_dir=options.log_dir, test_batch_size=100)
    print(args)
    model = ResNet(len(VOCDataset.CLASS_NAMES), weights_path=weights).to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=args.gamma)
    test_ap, test_map = trainer.train(args, model, optimizer, scheduler, model_name="resnet18")
    print("test map:", test_map)
    return test_map


if __name__ == "__main__":
    main()
