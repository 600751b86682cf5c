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


# BEGIN SOLUTION NO PROMPT
def _save(fig: object, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def _numpy(values: object) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)
# END SOLUTION


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
    # BEGIN SOLUTION
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(class_names)), 4))
    width = 0.8 / max(1, len(counts))
    positions = np.arange(len(class_names))
    for offset, (split, values) in enumerate(counts.items()):
        ax.bar(positions + offset * width, _numpy(values), width, label=split)
    ax.set_xticks(positions + width * (len(counts) - 1) / 2, list(class_names), rotation=45, ha="right")
    ax.set_ylabel("images")
    ax.set_title("class distribution")
    ax.legend()
    return _save(fig, path)
    # END SOLUTION


def plot_training_curves(history: Mapping[str, Sequence[float]], path: str | os.PathLike) -> str:
    """Loss and accuracy per epoch, train against val (to judge over-fitting), Q2.2(c).

    Args:
        history: ``train_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy``
            lists (as returned by ``train.fit``).
        path: where to write the PNG.

    Returns:
        str: ``path``.
    """
    # BEGIN SOLUTION
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split in ("train", "val"):
            values = list(history.get(f"{split}_{metric}", []))
            ax.plot(range(1, len(values) + 1), values, marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
    return _save(fig, path)
    # END SOLUTION


def confusion_matrix_figure(cm: Tensor, class_names: Sequence[str]) -> object:
    """A matplotlib figure of a confusion matrix (rows true, columns predicted) with counts in the cells."""
    # BEGIN SOLUTION
    matrix = _numpy(cm)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(class_names)), max(4, 0.6 * len(class_names))))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, list(class_names), rotation=45, ha="right")
    ax.set_yticks(ticks, list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=7,
                color="white" if value > threshold else "black")
    return fig
    # END SOLUTION


def plot_confusion_matrix(cm: Tensor, class_names: Sequence[str], path: str | os.PathLike) -> str:
    """Heat map of a confusion matrix (``confusion_matrix_figure``) written to ``path``."""
    # BEGIN SOLUTION
    return _save(confusion_matrix_figure(cm, class_names), path)
    # END SOLUTION


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
    # BEGIN SOLUTION
    images = images.detach().cpu().float()
    if mean is not None and std is not None:
        images = images * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    images = images.clamp(0, 1)
    count = images.shape[0]
    columns = min(count, 6)
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, true, pred in zip(axes.flat, images, _numpy(targets), _numpy(preds)):
        ax.imshow(image.permute(1, 2, 0).numpy())
        ax.set_title(f"{class_names[int(true)]} -> {class_names[int(pred)]}", fontsize=7)
    return _save(fig, path)
    # END SOLUTION


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
    # BEGIN SOLUTION
    centred = features - features.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return centred @ vh[:n_components].T
    # END SOLUTION


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
    # BEGIN SOLUTION
    from sklearn.manifold import TSNE

    data = _numpy(features).astype(np.float32)
    model = TSNE(n_components=n_components, perplexity=min(perplexity, (data.shape[0] - 1) / 3), init="pca",
                 random_state=seed)
    return torch.from_numpy(model.fit_transform(data).astype(np.float32))
    # END SOLUTION


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
    # BEGIN SOLUTION
    data, labels = _numpy(points), _numpy(labels)
    if data.ndim != 2 or data.shape[1] not in (2, 3):
        raise ValueError(f"points must have 2 or 3 columns, got shape {list(data.shape)}")
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d" if data.shape[1] == 3 else None)
    colours = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for cls in np.unique(labels):
        rows = data[labels == cls]
        ax.scatter(*rows.T, s=10, color=colours(int(cls) % colours.N), label=class_names[int(cls)])
    ax.set_title(title)
    ax.legend(fontsize=7, markerscale=2)
    return _save(fig, path)
    # END SOLUTION
