"""Public tests of the feature plots (Q2.3d, seed 004 PCA/t-SNE) and the report figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from grader.compare import assert_close, check, describe_call
from grader.student import type_name


def clustered_features(count_per_class: int = 12, classes: int = 3, dim: int = 10, seed: int = 0):
    """Well-separated Gaussian clusters: a faithful embedding keeps them apart."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=generator) * 10
    labels = torch.arange(classes).repeat_interleave(count_per_class)
    features = centres[labels] + torch.randn(len(labels), dim, generator=generator)
    return features, labels


def nearest_neighbour_purity(points: torch.Tensor, labels: torch.Tensor) -> float:
    distances = torch.cdist(points.double(), points.double())
    distances.fill_diagonal_(float("inf"))
    return float((labels[distances.argmin(1)] == labels).double().mean())


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.6")
def test_pca_matches_sklearn(student):
    """Seed 004 PCA of features equals sklearn's PCA up to the sign of each component"""
    features, _ = clustered_features(seed=1)
    features = features + 5.0  # not centred
    got = student.visualize.pca(features, 2)
    expected = torch.from_numpy(PCA(2).fit_transform(features.double().numpy())).float()
    check(isinstance(got, torch.Tensor) and tuple(got.shape) == (36, 2),
          f"expected a [36, 2] tensor, got {type(got).__name__} {getattr(got, 'shape', '')}")
    signs = torch.sign((got * expected).sum(0))
    assert_close(got * signs, expected, call=describe_call("pca", features, 2), rtol=1e-3, atol=1e-3,
                 hint="centre the features, SVD, project on the top right singular vectors")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.3.4")
def test_tsne_2d_and_3d(student):
    """Q2.3(d) t-SNE in 2-D and 3-D: shapes, determinism for a seed, clusters stay apart"""
    features, labels = clustered_features(seed=2)
    for dims in (2, 3):
        got = student.visualize.tsne(features, dims, 0)
        check(isinstance(got, torch.Tensor) and tuple(got.shape) == (36, dims) and got.dtype == torch.float32,
              f"tsne(features [36, 10], {dims}) should give a float32 [36, {dims}] tensor, got "
              f"{type(got).__name__} {getattr(got, 'shape', '')} {getattr(got, 'dtype', '')}")
        check(bool(torch.isfinite(got).all()), "the embedding has non-finite values")
        purity = nearest_neighbour_purity(got, labels)
        check(purity >= 0.95, f"three well-separated clusters got mixed in the {dims}-D embedding (nearest-neighbour "
                              f"label agreement {purity:.2f})", hint="embed the features you were given")
        if dims == 2:
            again = student.visualize.tsne(features, dims, 0)
            assert_close(again, got, what="a second 2-D embedding with the same seed",
                         hint="TSNE(..., random_state=seed)")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.3.5")
def test_plot_embedding_2d_and_3d(student, sandbox_tmp_path, tools):
    """Q2.3(d) scatter plots of 2-D and 3-D embeddings, coloured by class"""
    features, labels = clustered_features(seed=3)
    for dims in (2, 3):
        path = sandbox_tmp_path / f"embedding_{dims}d.png"
        student.visualize.plot_embedding(features[:, :dims], labels, list(tools.classes), str(path), f"{dims}-D")
        tools.assert_png(path, f"{dims}-D embedding plot")


@pytest.mark.weight(1)
@pytest.mark.number("2.3.6")
def test_confusion_matrix_figure_and_png(student, sandbox_tmp_path, tools):
    """Q2.2(d)/2.3(c) confusion-matrix heat map: a matplotlib Figure, and a PNG file"""
    cm = torch.tensor(np.arange(25).reshape(5, 5) % 7)
    names = list(tools.classes[:5])
    figure = student.visualize.confusion_matrix_figure(cm, names)
    check(type_name(figure) == "matplotlib.figure.Figure",
          f"confusion_matrix_figure should return a matplotlib.figure.Figure, got {type_name(figure)}")
    path = sandbox_tmp_path / "confusion.png"
    returned = student.visualize.plot_confusion_matrix(cm, names, str(path))
    check(str(returned) == str(path), f"plot_confusion_matrix should return the path, got {returned!r}")
    tools.assert_png(path, "confusion matrix heat map")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.3.7")
def test_training_curves_png(student, sandbox_tmp_path, tools):
    """Q2.2(c)/2.3(b) loss and accuracy curves (train against val) as a PNG"""
    history = {"train_loss": [2.0, 1.5, 1.1], "val_loss": [2.1, 1.7, 1.6], "train_accuracy": [0.2, 0.5, 0.7],
               "val_accuracy": [0.2, 0.4, 0.45]}
    path = sandbox_tmp_path / "curves" / "curves.png"
    student.visualize.plot_training_curves(history, str(path))
    tools.assert_png(path, "training curves")
