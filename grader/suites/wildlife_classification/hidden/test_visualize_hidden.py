"""Hidden tests of the feature plots: PCA in float64 with three components, t-SNE on tiny sets, bad input."""

from __future__ import annotations

import pytest
import torch
from sklearn.decomposition import PCA

from grader.compare import assert_close, check, describe_call
from grader.student import call_keeping_inputs, student_raises


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.6")
def test_pca_three_components_float64(student):
    """Seed 004 PCA: three components, float64 kept, off-centre data (left unchanged), against sklearn up to sign"""
    generator = torch.Generator().manual_seed(21)
    scales = torch.tensor([9.0, 5.0, 3.0, 1.0, 0.5, 0.1], dtype=torch.float64)
    features = torch.randn(40, 6, generator=generator, dtype=torch.float64) * scales + 100.0
    got = call_keeping_inputs(student.visualize.pca, features, 3)  # centre a copy, not the caller's features
    check(isinstance(got, torch.Tensor) and got.dtype == torch.float64 and tuple(got.shape) == (40, 3),
          f"expected a float64 [40, 3] tensor, got {getattr(got, 'dtype', type(got).__name__)} {getattr(got, 'shape', '')}")
    expected = torch.from_numpy(PCA(3).fit_transform(features.numpy()))
    signs = torch.sign((got * expected).sum(0))
    assert_close(got * signs, expected, call=describe_call("pca", features, 3), rtol=1e-6, atol=1e-8,
                 hint="subtract the column means first; components ordered by decreasing variance")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.3.4")
def test_tsne_small_set(student):
    """Q2.3(d) t-SNE on 12 samples (perplexity below N): finite in 2-D and 3-D, two clusters apart in 2-D"""
    generator = torch.Generator().manual_seed(22)
    labels = torch.arange(12) % 2
    features = torch.randn(12, 8, generator=generator) + 20.0 * labels[:, None]
    for dims in (2, 3):
        got = student.visualize.tsne(features, dims, 0)
        check(isinstance(got, torch.Tensor) and tuple(got.shape) == (12, dims) and bool(torch.isfinite(got).all()),
              f"tsne of 12 samples should give a finite [12, {dims}] embedding, got {getattr(got, 'shape', got)}",
              hint="perplexity=min(perplexity, (N - 1) / 3)")
        if dims == 3:
            continue  # 3-D t-SNE of 12 points is too noisy to judge
        distances = torch.cdist(got.double(), got.double())
        same = labels[:, None] == labels[None, :]
        within = float(distances[same].sum() / (same.sum() - 12))
        between = float(distances[~same].mean())
        check(between > 1.5 * within, f"two far-apart clusters of 6 are not separated in {dims}-D (mean distance "
                                      f"within clusters {within:.3g}, between {between:.3g})")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.3.5")
def test_plot_embedding_rejects_other_dimensions(student, sandbox_tmp_path):
    """Q2.3(d) plot_embedding: points with 4 columns are an error"""
    points = torch.randn(10, 4, generator=torch.Generator().manual_seed(23))
    with student_raises("ValueError"):
        student.visualize.plot_embedding(points, torch.zeros(10, dtype=torch.long), ["a"],
                                         str(sandbox_tmp_path / "bad.png"))
