"""Self-supervised pre-training of a ResNet backbone with BYOL.

    python train_byol.py --data hw1_data/p2_data/mini/train --arch resnet50 --epochs 100 --out byol_run

writes ``byol_run/backbone_last.pth`` (and ``backbone_epochNNN.pth``), the state
dict of the online encoder alone, ready for ``downstream.build_classifier``, and
TensorBoard logs in ``byol_run/tensorboard`` (``tensorboard --logdir byol_run``).
The seed's settings: ResNet-50, 128x128 views, batch 128, Adam with lr 1e-4,
cosine annealing of the learning rate.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from augmentations import byol_augmentation
from byol import BYOL, cosine_tau, resnet_backbone
from officehome import UnlabeledImages
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter


def build_optimizer(model: BYOL, lr: float = 1e-4, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam over the online parameters only (``model.online_parameters()``), one parameter group.

    The target network is never given to the optimiser: it moves only through
    ``model.update_target``.
    """
    # BEGIN SOLUTION
    return torch.optim.Adam(model.online_parameters(), lr=lr, weight_decay=weight_decay)
    # END SOLUTION


def train_step(model: BYOL, optimizer: torch.optim.Optimizer, view1: Tensor, view2: Tensor,
               tau: float | None = None) -> float:
    """One BYOL step on a batch of view pairs.

    In order: ``model.train()``, ``optimizer.zero_grad()``, the loss
    ``model(view1, view2)``, ``backward()``, ``optimizer.step()``, then the
    EMA update of the target with ``tau`` (``model.update_target(tau)``; None
    uses ``model.tau``).

    Args:
        model (BYOL): the networks, already on the views' device.
        optimizer: built by ``build_optimizer``.
        view1, view2 (Tensor[B, 3, H, W]): the two views of the same B images, B >= 2.

    Returns:
        float: the loss of this step (before the update).
    """
    # BEGIN SOLUTION
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = model(view1, view2)
    loss.backward()
    optimizer.step()
    model.update_target(tau)
    return float(loss.detach())
    # END SOLUTION


def save_backbone(backbone: nn.Module, path: str | Path) -> Path:
    """Save ``backbone.state_dict()`` alone (no projector, predictor or target) to ``path``.

    Creates the parent folders. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(backbone.state_dict(), path)
    return path


def pretrain(model: BYOL, loader: Sequence | DataLoader, epochs: int, optimizer: torch.optim.Optimizer,
             out_dir: str | Path, device: str | torch.device = "cpu", schedule_tau: bool = True,
             save_every: int = 10) -> list[float]:
    """The BYOL pre-training loop.

    - ``loader`` yields ``(view1, view2)`` batches and has a ``len``; when
      ``loader.dataset`` has ``set_epoch``, call it with the 0-based epoch
      before each epoch.
    - Learning rate: ``torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
      T_max=epochs * len(loader))`` (``eta_min`` 0), stepped after every
      optimiser step, so that it reaches 0 after the last step.
    - Target decay: at global step ``k`` (0-based, ``K = epochs * len(loader)``)
      use ``cosine_tau(k, K, model.tau)`` when ``schedule_tau``, else ``model.tau``.
      Each step is ``train_step(model, optimizer, view1, view2, tau)``.
    - TensorBoard (``SummaryWriter(out_dir / "tensorboard")``): at every step
      ``k``, scalars ``"pretrain/loss"``, ``"pretrain/lr"`` (the rate used by that
      step) and ``"pretrain/tau"`` with ``global_step=k``; after each epoch
      ``"pretrain/epoch_loss"`` (the mean step loss) with ``global_step=epoch``
      (0-based). Close the writer at the end.
    - Checkpoints, ``save_backbone(model.online_encoder, ...)``: after every epoch
      ``out_dir / "backbone_last.pth"``; after epochs ``e`` (1-based) that are
      multiples of ``save_every``, and after the last, ``out_dir / f"backbone_epoch{e:03d}.pth"``.

    Args:
        model (BYOL): on ``device`` already.
        loader: batches of views.
        epochs (int): passes over ``loader``, >= 1.
        optimizer: from ``build_optimizer``.
        out_dir: folder for logs and checkpoints (created).
        device: where the views go.
        schedule_tau (bool): use the cosine schedule of τ.
        save_every (int): epochs between numbered checkpoints, >= 1.

    Returns:
        list[float]: the mean loss of each epoch.

    Raises:
        ValueError: when ``epochs`` or ``save_every`` < 1, or ``loader`` is empty (quoting the value).
    """
    # Hint: len(loader) batches per epoch; step the scheduler after every optimizer.step().
    # BEGIN SOLUTION
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}")
    if save_every < 1:
        raise ValueError(f"save_every must be >= 1, got {save_every!r}")
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError("the loader is empty (len(loader) == 0)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total_steps = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    writer = SummaryWriter(str(out_dir / "tensorboard"))
    history = []
    step = 0
    try:
        for epoch in range(epochs):
            dataset = getattr(loader, "dataset", None)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            losses = []
            for view1, view2 in loader:
                tau = cosine_tau(step, total_steps, model.tau) if schedule_tau else model.tau
                lr = optimizer.param_groups[0]["lr"]
                loss = train_step(model, optimizer, view1.to(device), view2.to(device), tau)
                scheduler.step()
                writer.add_scalar("pretrain/loss", loss, step)
                writer.add_scalar("pretrain/lr", lr, step)
                writer.add_scalar("pretrain/tau", tau, step)
                losses.append(loss)
                step += 1
            history.append(sum(losses) / len(losses))
            writer.add_scalar("pretrain/epoch_loss", history[-1], epoch)
            save_backbone(model.online_encoder, out_dir / "backbone_last.pth")
            if (epoch + 1) % save_every == 0 or epoch + 1 == epochs:
                save_backbone(model.online_encoder, out_dir / f"backbone_epoch{epoch + 1:03d}.pth")
    finally:
        writer.close()
    return history
    # END SOLUTION


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="BYOL pre-training of a ResNet backbone")
    parser.add_argument("--data", required=True, help="folder of unlabelled images (e.g. p2_data/mini/train)")
    parser.add_argument("--arch", default="resnet50", help="torchvision ResNet name (default resnet50)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--tau", type=float, default=0.996, help="base target decay rate")
    parser.add_argument("--hidden-dim", type=int, default=4096)
    parser.add_argument("--projection-dim", type=int, default=256)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--save-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="byol_run", help="folder for checkpoints and TensorBoard logs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[float]:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    dataset = UnlabeledImages(args.data, byol_augmentation(args.image_size))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        num_workers=args.workers, pin_memory=str(args.device).startswith("cuda"),
                        persistent_workers=args.workers > 0)
    if len(loader) == 0:
        raise SystemExit(f"{len(dataset)} images make no full batch of {args.batch_size}; lower --batch-size")
    backbone, feature_dim = resnet_backbone(args.arch)
    model = BYOL(backbone, feature_dim, args.projection_dim, args.hidden_dim, args.tau).to(args.device)
    optimizer = build_optimizer(model, args.lr, args.weight_decay)
    start = time.perf_counter()
    history = pretrain(model, loader, args.epochs, optimizer, args.out, args.device, save_every=args.save_every)
    print(f"pre-trained {args.arch} for {args.epochs} epochs in {time.perf_counter() - start:.0f} s; "
          f"loss {history[0]:.4f} -> {history[-1]:.4f}; backbone saved to {Path(args.out) / 'backbone_last.pth'}")
    return history


if __name__ == "__main__":
    main()
