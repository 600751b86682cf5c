"""Plots of Q2.1(c), 2.2(e), 2.3(d) and seed 004 P1: class distributions, curves, confusion matrix,
misclassified examples, and PCA / t-SNE of backbone features in 2-D and 3-D.

Every ``plot_*`` function writes one PNG to ``path`` (creating its folder),
closes its figure, and returns ``path`` as a string. Use matplotlib's ``Agg``
backend (no display is needed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402


def plot_class_distribution(counts: Mapping[str, Sequence[int] | Tensor], class_names: Sequence[str],
                            path: str | os.PathLike) -> str:
    """Grouped bar chart of the number of images per class, one bar group per split, Q2.1(c).

    Args:
        counts: split name (e.g. ``"train"``, ``"val"``) -> K counts (``class_counts``).
        class_names: the K class names, for the x axis.
        path: where to write the PNG.

    Returns:
        str: ``path``.
    """
    raise NotImplementedError("TODO: plot_class_distribution")


def plot_training_curves(history: Mapping[str, Sequence[float]], path: str | os.PathLike) -> str:
    """Loss and accuracy per epoch, train against val (to judge over-fitting), Q2.2(c).

    Args:
        history: ``train_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy``
            lists (as returned by ``train.fit``).
        path: where to write the PNG.

    Returns:
        str: ``path``.
    """
    raise NotImplementedError("TODO: plot_training_curves")


def confusion_matrix_figure(cm: Tensor, class_names: Sequence[str]) -> object:
    """A matplotlib figure of a confusion matrix (rows true, columns predicted) with counts in the cells."""
    raise NotImplementedError("TODO: confusion_matrix_figure")


def plot_confusion_matrix(cm: Tensor, class_names: Sequence[str], path: str | os.PathLike) -> str:
    """Heat map of a confusion matrix (``confusion_matrix_figure``) written to ``path``."""
    raise NotImplementedError("TODO: plot_confusion_matrix")


def plot_misclassified(images: Tensor, targets: Tensor, preds: Tensor, class_names: Sequence[str],
                       path: str | os.PathLike, mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None) -> str:
    """Grid of misclassified images titled ``true -> predicted``, Q2.2(e).

    Args:
        images (Tensor[N, 3, H, W]): the images, normalised with ``mean``/``std``
            (un-normalise for display when given), N >= 1.
        targets (Tensor[N]), preds (Tensor[N]): true and predicted classes.
        class_names: names for the titles.
        path: where to write the PNG.

    Returns:
        str: ``path``.
    """
    raise NotImplementedError("TODO: plot_misclassified")


def pca(features: Tensor, n_components: int = 2) -> Tensor:
    """Project features on their first principal components (seed 004 P1 "PCA on the second-last layer").

    Centre the rows (subtract the column means), take the SVD of the centred
    matrix, and project on the top ``n_components`` right singular vectors.
    Equal to ``sklearn.decomposition.PCA(n_components).fit_transform`` up to the
    sign of each component.

    Args:
        features (Tensor[N, D]): float features, N >= n_components.
        n_components (int): output dimension.

    Returns:
        Tensor[N, n_components]: the projections, dtype of ``features``.
    """
    raise NotImplementedError("TODO: pca")


def tsne(features: Tensor, n_components: int = 2, seed: int = 0, perplexity: float = 30.0) -> Tensor:
    """t-SNE embedding of features with ``sklearn.manifold.TSNE`` (Q2.3(d), 2-D and 3-D).

    Use ``TSNE(n_components, perplexity=min(perplexity, (N - 1) / 3), init="pca",
    random_state=seed)``: the same call gives the same embedding, and small
    sets (N < 91) still work.

    Args:
        features (Tensor[N, D]): float features, N >= 4.
        n_components (int): 2 or 3.
        seed (int): random state.
        perplexity (float): upper bound of the perplexity.

    Returns:
        Tensor[N, n_components] float32.
    """
    raise NotImplementedError("TODO: tsne")


def plot_embedding(points: Tensor, labels: Tensor, class_names: Sequence[str], path: str | os.PathLike,
                   title: str = "") -> str:
    """Scatter plot of a 2-D or 3-D embedding, one colour per class, with a legend.

    Args:
        points (Tensor[N, 2] | Tensor[N, 3]): embedded samples (3 columns: a 3-D axes).
        labels (Tensor[N]): class of each point.
        class_names: names for the legend.
        path: where to write the PNG.
        title: figure title.

    Returns:
        str: ``path``.

    Raises:
        ValueError: ``points`` without 2 or 3 columns.
    """
    raise NotImplementedError("TODO: plot_embedding")
