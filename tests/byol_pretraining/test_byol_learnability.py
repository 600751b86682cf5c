"""Learnability (slow): BYOL pre-training on synthetic images gives a better linear probe than random init.

The pre-training images show one of 8 shapes in a random colour on a random
background (``colour="random"``): colour statistics, which a random network
sees best, say nothing of the class, the shape does. A small backbone
(4 conv-BN-ReLU blocks, 128 features) is pre-trained with the reference
(``BYOL``, ``UnlabeledImages`` with fresh seeded views every epoch, ``pretrain``:
Adam, cosine learning rate, cosine tau) on 512 images of 24x24 for 240 steps
of 64 pairs, a CPU budget of minutes; a logistic-regression probe on
its frozen features is compared with the same probe on the random
initialisation it started from.

Run with ``python -m pytest tests/byol_pretraining -m slow -s``; the numbers
are recorded in ``reference/byol_pretraining/README.md``.
"""

from __future__ import annotations

import copy
import os
import time

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from grader.data.byol_pretraining import make_mini, make_office_home

IMAGE_SIZE = 24
EPOCHS = int(os.environ.get("BYOL_LEARNABILITY_EPOCHS", "30"))  # 8 steps each


def small_backbone(width: int = 32) -> tuple[nn.Module, int]:
    """Four conv-BN-ReLU blocks (strides 1, 2, 2, 2) and global average pooling: ``[B, 3, H, W] -> [B, 4w]``."""

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]

    layers = [*block(3, width, 1), *block(width, 2 * width, 2), *block(2 * width, 4 * width, 2),
              *block(4 * width, 4 * width, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), 4 * width


def small_image_augmentation(ref, size: int):
    """BYOL's usual augmentation for small images (crop >= 30 % of the area, colour jitter p 0.8, grayscale p 0.2).

    The seed's pipeline crops down to 8 % of the area: on 24-pixel images that
    often cuts the shape away, and it learned less in this budget (see the README).
    """
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomResizedCrop((size, size), scale=(0.3, 1.0)),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(ref.augmentations.MEAN), list(ref.augmentations.STD)),
    ])


@torch.no_grad()
def features(backbone: nn.Module, dataset) -> tuple[torch.Tensor, torch.Tensor]:
    backbone.eval()
    chunks, labels = [], []
    for images, targets in DataLoader(dataset, batch_size=128):
        chunks.append(backbone(images))
        labels.append(targets)
    return torch.cat(chunks), torch.cat(labels)


def linear_probe(backbone: nn.Module, train_set, val_set) -> float:
    """Validation accuracy of a logistic regression on standardised frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = features(backbone, train_set)
    x_val, y_val = features(backbone, val_set)
    scaler = StandardScaler().fit(x_train.numpy())
    probe = LogisticRegression(max_iter=3000, C=1.0).fit(scaler.transform(x_train.numpy()), y_train.numpy())
    return float(probe.score(scaler.transform(x_val.numpy()), y_val.numpy()))


@torch.no_grad()
def normalised_std(network: nn.Module, images: torch.Tensor) -> float:
    """Mean over dimensions of the std (over images) of L2-normalised outputs; 0 means collapse.

    For outputs spread evenly on the unit sphere of dimension d it is about 1/sqrt(d).
    """
    network.eval()
    out = nn.functional.normalize(network(images), dim=1)
    return float(out.std(dim=0).mean())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_byol_pretraining_beats_random_initialisation(ref, tmp_path, one_torch_thread):
    torch.manual_seed(0)
    make_mini(tmp_path / "mini", count=512, num_classes=8, image_size=IMAGE_SIZE, seed=1, colour="random")
    make_office_home(tmp_path / "office", {"train": 400, "val": 400}, num_classes=8, image_size=IMAGE_SIZE,
                     seed=2, colour="random")
    evaluation = ref.augmentations.eval_transform(IMAGE_SIZE)
    train_set = ref.officehome.OfficeHomeDataset(tmp_path / "office" / "train.csv", tmp_path / "office" / "train",
                                                 evaluation, num_classes=8)
    val_set = ref.officehome.OfficeHomeDataset(tmp_path / "office" / "val.csv", tmp_path / "office" / "val",
                                               evaluation, num_classes=8)

    backbone, feature_dim = small_backbone()
    initial = copy.deepcopy(backbone)
    random_accuracy = linear_probe(initial, train_set, val_set)

    model = ref.byol.BYOL(backbone, feature_dim, projection_dim=64, hidden_dim=512, tau=0.99)
    views = ref.officehome.UnlabeledImages(tmp_path / "mini" / "train", small_image_augmentation(ref, IMAGE_SIZE),
                                           seed=0)
    # One worker prepares views while the main process trains; started anew each epoch so set_epoch reaches it.
    loader = DataLoader(views, batch_size=64, shuffle=True, drop_last=True, num_workers=1)
    optimizer = ref.train_byol.build_optimizer(model, lr=2e-3, weight_decay=1e-5)
    start = time.perf_counter()
    history = ref.train_byol.pretrain(model, loader, EPOCHS, optimizer, tmp_path / "run", save_every=EPOCHS)
    seconds = time.perf_counter() - start

    probe_images = torch.stack([val_set[i][0] for i in range(256)])
    backbone_std = normalised_std(model.online_encoder, probe_images)
    projection_std = normalised_std(nn.Sequential(model.online_encoder, model.online_projector), probe_images)
    byol_accuracy = linear_probe(model.online_encoder, train_set, val_set)
    saved, _ = small_backbone()
    saved.load_state_dict(torch.load(tmp_path / "run" / "backbone_last.pth", weights_only=True))
    print(f"\nBYOL learnability: {EPOCHS} epochs x {len(loader)} steps in {seconds:.0f} s "
          f"({torch.get_num_threads()} threads); loss {history[0]:.3f} -> {history[-1]:.3f}; "
          f"linear probe: random init {random_accuracy:.3f}, BYOL {byol_accuracy:.3f}; "
          f"std of normalised features {backbone_std:.4f} (1/sqrt(d) = {feature_dim ** -0.5:.4f}), "
          f"of projections {projection_std:.4f} (1/sqrt(d) = {64 ** -0.5:.4f})")
    assert history[-1] < history[0]
    assert backbone_std > 0.2 * feature_dim ** -0.5 and projection_std > 0.2 * 64 ** -0.5, "collapsed"
    assert byol_accuracy > random_accuracy + 0.08
    assert linear_probe(saved, train_set, val_set) == pytest.approx(byol_accuracy)
