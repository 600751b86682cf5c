"""Learnability (slow): the reference pipeline actually learns.

* SimpleCNN, trained by the reference ``trainer.train`` (the starter's loop: VOCDataset,
  augmentations, the hand-written loss inline, StepLR), then measured with
  ``metrics.eval_dataset_map`` (sigmoid, whole test set), on a synthetic VOC folder
  whose classes are the (shape, colour) drawn, several objects per image,
  reaches mAP >= 0.8 on its test split;
* the MNIST-configuration SimpleCNN (454,922 parameters) reaches >= 95 % test
  accuracy on scikit-learn's bundled handwritten digits upsampled to 28 x 28.

Run with ``python -m pytest tests/voc_classification -m slow``; measured numbers
are in ``reference/voc_classification/README.md``.
"""

from __future__ import annotations

import time

import pytest
import torch

from grader.data.voc_classification import make_learnable_voc

pytestmark = pytest.mark.slow

# Chosen so that one CPU core finishes in a few minutes of CPU time (see the README for measured times).
SIDE, TRAIN, TEST, EPOCHS, LR = 32, 3000, 400, 10, 2e-3


@pytest.mark.timeout(1800)
def test_simple_cnn_learns_synthetic_voc(ref, tmp_path, monkeypatch, flat_names, capsys):
    make_learnable_voc(tmp_path / "data" / "VOCdevkit" / "VOC2007", train=TRAIN, test=TEST, seed=0, side=SIDE)
    monkeypatch.chdir(tmp_path)  # the starter's loaders read data/VOCdevkit/VOC2007 from the working folder
    start, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(0)
    model = ref.simple_cnn.SimpleCNN(num_classes=20, inp_size=SIDE, c_dim=3)
    args = ref.utils.ARGS(epochs=EPOCHS, batch_size=32, test_batch_size=200, inp_size=SIDE, log_every=50,
                          val_every=10**9, lr=LR, step_size=5, gamma=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=args.gamma)
    with flat_names():
        ref.trainer.train(args, model, optimizer, scheduler, "learnability")
        # The whole test set through a sigmoid (metrics.py), not the starter's softmax and per-batch AP.
        model.eval()
        test_loader = ref.utils.get_data_loader("voc", train=False, batch_size=200, split="test", inp_size=SIDE)
        ap, mean_ap = ref.metrics.eval_dataset_map(model, "cpu", test_loader)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    with capsys.disabled():
        print(f"\nsynthetic VOC ({TRAIN} trainval / {TEST} test, {SIDE}px, {EPOCHS} epochs): "
              f"mAP {mean_ap:.3f}, worst class AP {ap.min():.3f}, {seconds:.0f} s wall, {cpu:.0f} s CPU")
    assert mean_ap >= 0.8


@pytest.mark.timeout(900)
def test_mnist_simple_cnn_learns_digits(ref, capsys):
    start, cpu = time.perf_counter(), time.process_time()
    accuracy = ref.q0_hello_mnist.train_digits(epochs=15, log=lambda line: None)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    with capsys.disabled():
        print(f"\nsklearn digits at 28x28, SimpleCNN(10, 28, 1): test accuracy {accuracy:.4f}, "
              f"{seconds:.0f} s wall, {cpu:.0f} s CPU")
    assert accuracy >= 0.95
