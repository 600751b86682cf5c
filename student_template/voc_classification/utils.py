"""Hyper-parameters, data loaders and multi-label evaluation: the course's code.

Mirrors ``q1_q2_classification/utils.py`` of CMU 16-824 (Spring 2024), where
nothing is a TODO: ``compute_ap`` and ``eval_dataset_map`` are marked "do not
modify" (a softmax and AP per test batch, as handed out), so they earn and lose
nothing in the course profile. This project's corrected versions, graded in the
``extended`` profile, are in ``metrics.py``.
"""

from __future__ import annotations

import numpy as np
import sklearn.metrics
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader


class ARGS:
    """Hyper-parameters of ``trainer.train``.

    Only the attributes below exist; pass the ones to change as keywords::

        >>> args = ARGS(batch_size=23, use_cuda=True)
        >>> args.device
        device(type='cuda')

    Raises:
        ValueError: for an unknown or private attribute name, or for ``device``
            (a property derived from ``use_cuda``).
    """

    # input batch size for training
    batch_size = 64
    # input batch size for testing
    test_batch_size = 1000
    # number of epochs to train for
    epochs = 14
    # learning rate
    lr = 1.0
    # learning rate step gamma and step size (epochs) of StepLR
    gamma = 0.7
    step_size = 1
    # how many batches to wait before logging training status
    log_every = 100
    # how many batches to wait before evaluating model
    val_every = 100
    # set flag to True if you wish to save the model after training
    save_at_end = False
    # set this to value >0 if you wish to save every x epochs
    save_freq = -1
    # set true if using GPU during training
    use_cuda = False
    # input size
    inp_size = 224

    def __init__(self, **kwargs):
        for key, value in kwargs.items():
            if key == "device":
                raise ValueError("'device' cannot be set: it follows use_cuda")
            if "__" in key or key.startswith("_") or not hasattr(type(self), key):
                raise ValueError(f"unknown hyper-parameter {key!r}")
            setattr(self, key, value)

    def __repr__(self):
        lines = []
        for attr in dir(self):
            if not attr.startswith("_") and attr != "use_cuda" and not callable(getattr(self, attr)):
                lines.append(f"args.{attr} = {getattr(self, attr)}")
        return "\n".join(lines) + "\n"

    @property
    def device(self):
        return torch.device("cuda" if self.use_cuda else "cpu")


def get_data_loader(name="voc", train=True, batch_size=64, split="train", inp_size=224):
    """A DataLoader over ``VOCDataset(split, inp_size)`` (data under ``data/VOCdevkit/VOC2007/``), shuffled when ``train``."""
    if name == "voc":
        from voc_dataset import VOCDataset
        dataset = VOCDataset(split, inp_size)
    else:
        raise ValueError(f"unknown dataset {name!r}; only 'voc' is available")

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        num_workers=4,
    )
    return loader


def compute_ap(gt, pred, valid, average=None):
    # ! Do not modify the code in this function

    """
    Compute the multi-label classification accuracy.
    Args:
        gt (np.ndarray): Shape Nx20, 0 or 1, 1 if the object i is present in that
            image.
        pred (np.ndarray): Shape Nx20, probability of that object in the image
            (output probablitiy).
        valid (np.ndarray): Shape Nx20, 0 if you want to ignore that class for that
            image. Some objects are labeled as ambiguous.
    Returns:
        AP (list): average precision for all classes
    """
    nclasses = gt.shape[1]
    AP = []
    for cid in range(nclasses):
        gt_cls = gt[:, cid][valid[:, cid] > 0].astype("float32")
        pred_cls = pred[:, cid][valid[:, cid] > 0].astype("float32")
        # As per PhilK. code:
        # https://github.com/philkr/voc-classification/blob/master/src/train_cls.py
        pred_cls -= 1e-5 * gt_cls
        ap = sklearn.metrics.average_precision_score(
            gt_cls, pred_cls, average=average)
        AP.append(ap)
    return AP


def eval_dataset_map(model, device, test_loader):
    # ! Do not modify the code in this function

    """
    Evaluate the model with the given dataset
    Args:
         model (keras.Model): model to be evaluated
         dataset (tf.data.Dataset): evaluation dataset
    Returns:
         AP (list): Average Precision for all classes
         MAP (float): mean average precision
    """

    with torch.no_grad():
        AP_list = []

        for data, target, wgt in test_loader:
            data = data.to(device)
            output = model(data)

            pred = F.softmax(output, dim=-1).cpu().numpy()
            gt = target.cpu().numpy()
            valid = wgt.cpu().numpy()

            AP = compute_ap(gt, pred, valid)
            AP_list.extend(AP)

    AP = np.array(AP_list)
    mAP = np.mean(AP)

    return AP, mAP
