"""Task 0 (2020 edition): the SimpleCNN warm-up on handwritten digits.

MNIST cannot be downloaded here, so the warm-up uses scikit-learn's bundled
digits (1,797 real handwritten 8 x 8 digits), upsampled to MNIST's 28 x 28 and
normalised like MNIST. ``SimpleCNN(num_classes=10, inp_size=28, c_dim=1)`` has
454,922 parameters and reaches about 97 % test accuracy in a few seconds.

    python q0_hello_mnist.py --epochs 15
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from simple_cnn import SimpleCNN

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def load_digits_28(test_fraction=0.25, seed=0):
    """sklearn's digits as MNIST-like tensors.

    Returns:
        tuple: ``train_x`` (Tensor[N, 1, 28, 28] float32), ``train_y`` (LongTensor[N]),
        ``test_x``, ``test_y``; a stratified split, fixed by ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    images = (images - MNIST_MEAN) / MNIST_STD
    targets = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(np.arange(len(targets)), test_size=test_fraction,
                                           stratify=digits.target, random_state=seed)
    return images[train_idx], targets[train_idx], images[test_idx], targets[test_idx]


def train_digits(epochs=15, lr=1e-3, batch_size=64, seed=0, log=print):
    """Train SimpleCNN on the digits with Adam and cross-entropy; return the test accuracy (a float)."""
    torch.manual_seed(seed)
    train_x, train_y, test_x, test_y = load_digits_28(seed=seed)
    model = SimpleCNN(num_classes=10, inp_size=28, c_dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_y), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
        log(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {accuracy:.4f}")
    return accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=1e-3)
    options = parser.parse_args(argv)
    return train_digits(epochs=options.epochs, lr=options.lr)


if __name__ == "__main__":
    main()
