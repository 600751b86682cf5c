"""Q1: train SimpleCNN on PASCAL VOC 2007 (64 x 64 images, Adam, StepLR).

Mirrors ``q1_q2_classification/train_q1.py`` of CMU 16-824 (Spring 2024). Run it
from this folder, with VOC2007 under ``data/VOCdevkit/VOC2007``: ``python train_q1.py``.
The handout's target, mAP about 0.22 after 5 epochs, is for the real VOC2007
(trainval / test) and is reached in minutes on a GPU. Curves go to TensorBoard
(``runs/``): ``Loss/train``, ``map``, ``learning_rate`` and one gradient
histogram per parameter. The hyper-parameters are the student's choice: not graded.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import trainer
from simple_cnn import SimpleCNN
from utils import ARGS
from voc_dataset import VOCDataset

if __name__ == "__main__":
    np.random.seed(0)
    torch.manual_seed(0)
    random.seed(0)

    # TODO: Create hyperparameter argument class. Use image size of 64x64 in Q1. You should get a
    # map of around 22 in 5 epochs.
    args = ARGS(epochs=10, inp_size=64, use_cuda=True, val_every=70)  # lr, batch_size, step_size, gamma: TODO

    print(args)

    # initializes the model
    model = SimpleCNN(num_classes=len(VOCDataset.CLASS_NAMES), inp_size=64, c_dim=3)
    # initializes Adam optimizer and simple StepLR scheduler
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=args.gamma)
    # trains model using your training code and reports test map
    test_ap, test_map = trainer.train(args, model, optimizer, scheduler)
    print("test map:", test_map)
