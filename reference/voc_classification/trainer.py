"""Training loop with TensorBoard logging, and the multi-label loss.

Mirrors ``q1_q2_classification/trainer.py`` of CMU 16-824 (Spring 2024); the
loss, which the handout writes inline, is its own function so that it can be
tested.
"""

from __future__ import annotations

import torch
import utils
from torch.utils.tensorboard import SummaryWriter


def save_this_epoch(args, epoch):
    """Whether to save a checkpoint after ``epoch`` (0-based)."""
    if args.save_freq > 0 and (epoch + 1) % args.save_freq == 0:
        return True
    if args.save_at_end and (epoch + 1) == args.epochs:
        return True
    return False


def save_model(epoch, model_name, model):
    """Write ``checkpoint-{model_name}-epoch{epoch + 1}.pth`` (the state dict) in the current folder."""
    filename = f"checkpoint-{model_name}-epoch{epoch + 1}.pth"
    print("saving model at ", filename)
    torch.save(model.state_dict(), filename)


def multilabel_loss(output, target, wgt):
    """Weighted binary cross-entropy of multi-label logits, written by hand.

    For every image ``n`` and class ``c`` with logit ``x``, label ``y`` and
    weight ``w``::

        l = w * -(y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x)))

    and the loss is the mean of ``l`` over all ``N * C`` entries (entries of
    weight 0 contribute 0 to the sum and nothing to the gradient). This equals
    ``F.binary_cross_entropy_with_logits(output, target, weight=wgt)``, but do
    not use torch's loss functions: write it with elementary operations that
    neither overflow nor lose precision, e.g. ``max(x, 0) - x * y +
    log(1 + exp(-|x|))``, so that logits of +-1e4 give finite values and
    gradients. (Dividing the weighted sum by ``wgt.sum()`` instead of ``N * C``
    is accepted too.)

    Args:
        output (Tensor[N, C]): logits, float.
        target (Tensor[N, C]): labels in {0, 1} (any float in [0, 1] works).
        wgt (Tensor[N, C]): non-negative weights.

    Returns:
        Tensor[] : the loss, a 0-dim tensor of the dtype of ``output``,
        differentiable with respect to ``output``.
    """
    # BEGIN SOLUTION
    # torch.maximum sends half the gradient each way at a tie, so the derivative at x = 0 is exact.
    positive_part = torch.maximum(output, torch.zeros_like(output))
    elementwise = positive_part - output * target + torch.log1p(torch.exp(-output.abs()))
    return (elementwise * wgt).mean()
    # END SOLUTION


def train(args, model, optimizer, scheduler=None, model_name="model"):
    """Train ``model`` on VOC ``trainval`` and evaluate it on ``test``.

    Logs to TensorBoard (``SummaryWriter(args.log_dir)``; None writes under
    ``runs/``): every ``args.log_every`` iterations the scalar ``Loss/train``
    and, for every parameter ``name`` of the model that has a gradient, a
    histogram of that gradient under the tag ``f"{name}/grad"``; every
    ``args.val_every`` iterations the scalar ``map``; after every epoch, when a
    scheduler is given, ``scheduler.step()`` and the scalar ``learning_rate``
    (the learning rate of the next epoch). Saves checkpoints as
    ``save_this_epoch`` says, and closes the writer at the end so that every
    event is on disk.

    Args:
        args (ARGS): hyper-parameters.
        model (nn.Module): maps Tensor[B, 3, inp_size, inp_size] to logits Tensor[B, 20].
        optimizer (torch.optim.Optimizer): over ``model.parameters()``.
        scheduler: a learning-rate scheduler stepped once per epoch, or None.
        model_name (str): used in checkpoint file names.

    Returns:
        tuple: ``(ap, map)`` of the trained model on the test split
        (``utils.eval_dataset_map``).
    """
    writer = SummaryWriter(log_dir=getattr(args, "log_dir", None))
    data_dir = getattr(args, "data_dir", "data/VOCdevkit/VOC2007/")
    num_workers = getattr(args, "num_workers", 4)
    train_loader = utils.get_data_loader("voc", train=True, batch_size=args.batch_size, split="trainval",
                                         inp_size=args.inp_size, data_dir=data_dir, num_workers=num_workers)
    test_loader = utils.get_data_loader("voc", train=False, batch_size=args.test_batch_size, split="test",
                                        inp_size=args.inp_size, data_dir=data_dir, num_workers=num_workers)

    # Ensure model is in correct mode and on right device
    model.train()
    model = model.to(args.device)

    cnt = 0
    for epoch in range(args.epochs):
        for batch_idx, (data, target, wgt) in enumerate(train_loader):
            data, target, wgt = data.to(args.device), target.to(args.device), wgt.to(args.device)

            optimizer.zero_grad()
            output = model(data)
            # BEGIN SOLUTION
            loss = multilabel_loss(output, target, wgt)
            # END SOLUTION
            loss.backward()

            if cnt % args.log_every == 0:
                writer.add_scalar("Loss/train", loss.item(), cnt)
                print(f"Train Epoch: {epoch} [{cnt} ({100.0 * batch_idx / len(train_loader):.0f}%)]\t"
                      f"Loss: {loss.item():.6f}")
                # TODO: a histogram of the gradient of every parameter, tag f"{name}/grad"
                # BEGIN SOLUTION
                for name, param in model.named_parameters():
                    if param.grad is not None:
                        writer.add_histogram(f"{name}/grad", param.grad.detach().cpu(), cnt)
                # END SOLUTION

            optimizer.step()

            # Validation iteration
            if cnt % args.val_every == 0:
                model.eval()
                ap, map = utils.eval_dataset_map(model, args.device, test_loader)
                print("map: ", map)
                writer.add_scalar("map", map, cnt)
                model.train()

            cnt += 1

        if scheduler is not None:
            # TODO: step the scheduler and log the scalar "learning_rate"
            # BEGIN SOLUTION
            scheduler.step()
            writer.add_scalar("learning_rate", scheduler.get_last_lr()[0], cnt)
            # END SOLUTION

        # save model
        if save_this_epoch(args, epoch):
            save_model(epoch, model_name, model)

    # Validation iteration
    model.eval()
    ap, map = utils.eval_dataset_map(model, args.device, test_loader)
    writer.close()
    return ap, map
