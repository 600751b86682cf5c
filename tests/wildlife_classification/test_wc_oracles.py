"""The wildlife_classification reference against independent oracles, on random inputs (hypothesis).

scikit-learn for the metrics and PCA, torch.autograd for every derivative,
torch's cross_entropy for the soft-target loss, scipy for entropies and
distances, torch.optim.SGD for the L2 step, and the split's stated properties
on random label lists.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import cdist
from sklearn import metrics as skm
from sklearn.decomposition import PCA

from grader.paths import reference_root
from grader.sandbox.loader import load_modules

pytestmark = pytest.mark.filterwarnings("ignore:A single label was found")

MODULES = ("theory", "wildlife_dataset", "models", "mixup", "metrics", "train", "visualize")
seeds = st.integers(0, 2**31 - 1)


@pytest.fixture(scope="module")
def ref():
    modules = load_modules(reference_root() / "wildlife_classification", MODULES, isolated=True)

    class Reference:
        pass

    holder = Reference()
    for name, module in modules.items():
        setattr(holder, name, module)
    return holder


@st.composite
def predictions(draw, max_classes: int = 10):
    classes = draw(st.integers(1, max_classes))
    count = draw(st.integers(1, 60))
    targets = draw(st.lists(st.integers(0, classes - 1), min_size=count, max_size=count))
    preds = draw(st.lists(st.integers(0, classes - 1), min_size=count, max_size=count))
    return torch.tensor(preds), torch.tensor(targets), classes


# -- metrics -------------------------------------------------------------------------

@settings(max_examples=80)
@given(predictions())
def test_metrics_equal_sklearn(ref, case):
    preds, targets, classes = case
    p, t, labels = preds.numpy(), targets.numpy(), list(range(classes))
    assert ref.metrics.accuracy(preds, targets) == pytest.approx(skm.accuracy_score(t, p), abs=1e-12)
    cm = ref.metrics.confusion_matrix(preds, targets, classes)
    assert cm.dtype == torch.int64
    np.testing.assert_array_equal(cm.numpy(), skm.confusion_matrix(t, p, labels=labels))
    for average in ("macro", "weighted", "micro"):
        expected = skm.f1_score(t, p, labels=labels, average=average, zero_division=0)
        assert ref.metrics.f1_score(preds, targets, classes, average) == pytest.approx(expected, abs=1e-12), average
    per_class = ref.metrics.f1_score(preds, targets, classes, None)
    np.testing.assert_allclose(per_class.numpy(), skm.f1_score(t, p, labels=labels, average=None, zero_division=0),
                               atol=1e-12)


@settings(max_examples=30)
@given(predictions(max_classes=6))
def test_f1_equals_torchmetrics(ref, case):
    from torchmetrics.functional.classification import multiclass_f1_score

    preds, targets, classes = case
    if classes < 2:
        return
    for average in ("macro", "weighted", "micro"):
        expected = float(multiclass_f1_score(preds, targets, classes, average=average, zero_division=0))
        got = ref.metrics.f1_score(preds, targets, classes, average)
        if average == "macro":  # torchmetrics drops classes absent from both preds and targets from the mean
            present = (torch.bincount(preds, minlength=classes) + torch.bincount(targets, minlength=classes)) > 0
            got = float(ref.metrics.f1_score(preds, targets, classes, None)[present].mean())
        assert got == pytest.approx(expected, abs=1e-6), average


@settings(max_examples=50)
@given(predictions(), st.integers(1, 5))
def test_misclassified_per_class_brute_force(ref, case, k):
    preds, targets, classes = case
    expected = {c: [i for i in range(len(preds)) if targets[i] == c and preds[i] != c][:k] for c in range(classes)}
    assert ref.metrics.misclassified_per_class(preds, targets, classes, k) == expected


@settings(max_examples=50)
@given(seeds, st.integers(1, 40), st.integers(1, 7))
def test_centroids_and_distances_equal_numpy_and_scipy(ref, seed, count, classes):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(count, 5, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (count,), generator=generator)
    preds = torch.randint(0, classes, (count,), generator=generator)
    centroids = ref.metrics.class_centroids(features, labels, classes)
    for c in range(classes):
        rows = features[labels == c].numpy()
        if len(rows):
            np.testing.assert_allclose(centroids[c].numpy(), rows.mean(0), atol=1e-12)
        else:
            assert torch.isnan(centroids[c]).all()
    table = cdist(features.numpy(), np.nan_to_num(centroids.numpy()))
    got = ref.metrics.centroid_distances(features, labels, preds, torch.nan_to_num(centroids)).numpy()
    np.testing.assert_allclose(got[:, 0], table[np.arange(count), labels.numpy()], atol=1e-12)
    wrong = (preds != labels).numpy()
    np.testing.assert_allclose(got[wrong, 1], table[np.arange(count), preds.numpy()][wrong], atol=1e-12)
    assert np.isnan(got[~wrong, 1]).all()


# -- theory: derivatives against autograd ----------------------------------------------------

@settings(max_examples=60)
@given(seeds, st.integers(2, 9), st.sampled_from([torch.float32, torch.float64]))
def test_softmax_derivatives_equal_autograd(ref, seed, classes, dtype):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(3, classes, generator=generator, dtype=dtype) * 5
    y_hat = torch.softmax(z, dim=1)
    jacobian = ref.theory.softmax_jacobian(y_hat)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    for row in range(3):
        expected = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, dim=0), z[row])
        torch.testing.assert_close(jacobian[row], expected, atol=tol, rtol=tol)
    y = F.one_hot(torch.randint(0, classes, (3,), generator=generator), classes).to(dtype)
    leaf = z.clone().requires_grad_(True)
    (-(y * torch.log_softmax(leaf, 1)).sum()).backward()
    torch.testing.assert_close(ref.theory.softmax_cross_entropy_grad(y_hat, y), leaf.grad, atol=tol, rtol=tol)
    leaf = z.clone().requires_grad_(True)
    labels = (torch.rand(z.shape, generator=generator) > 0.5).to(dtype)
    ((torch.sigmoid(leaf) - labels) ** 2).sum().backward()
    torch.testing.assert_close(ref.theory.sigmoid_mse_grad(z, labels), leaf.grad, atol=tol, rtol=tol)
    leaf = z.clone().requires_grad_(True)
    F.binary_cross_entropy_with_logits(leaf, labels, reduction="sum").backward()
    torch.testing.assert_close(ref.theory.sigmoid_bce_grad(z, labels), leaf.grad, atol=tol, rtol=tol)


@settings(max_examples=60)
@given(st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=12), st.sampled_from([torch.float32, torch.float64]))
def test_stable_softmax_finite_and_equal_to_torch(ref, values, dtype):
    z = torch.tensor(values, dtype=dtype)
    got = ref.theory.stable_softmax(z)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.softmax(z, 0))
    torch.testing.assert_close(ref.theory.stable_softmax(torch.tensor([1000.0, 0.0, -1000.0])),
                               torch.tensor([1.0, 0.0, 0.0]))


@settings(max_examples=40)
@given(seeds, st.integers(2, 8))
def test_entropies_equal_scipy_and_kl_is_ce_minus_h(ref, seed, classes):
    generator = torch.Generator().manual_seed(seed)
    p = torch.rand(4, classes, generator=generator, dtype=torch.float64)
    p[0, 0] = 0.0
    p = p / p.sum(1, keepdim=True)
    q = torch.softmax(torch.randn(4, classes, generator=generator, dtype=torch.float64), 1)
    h, ce, kl = ref.theory.entropy(p), ref.theory.cross_entropy(p, q), ref.theory.kl_divergence(p, q)
    np.testing.assert_allclose(h.numpy(), stats.entropy(p.numpy(), axis=1), atol=1e-12)
    np.testing.assert_allclose(kl.numpy(), stats.entropy(p.numpy(), q.numpy(), axis=1), atol=1e-12)
    torch.testing.assert_close(kl, ce - h)
    torch.testing.assert_close(kl, F.kl_div(q.log(), p, reduction="none").sum(1))
    assert (kl >= -1e-12).all()


def test_handout_numbers(ref):
    assert float(ref.theory.binary_cross_entropy(torch.tensor(0.9), torch.tensor(0.0))) == pytest.approx(2.302585,
                                                                                                          abs=1e-6)
    got = ref.theory.mean_binary_cross_entropy(torch.tensor([0.1, 0.2, 0.7]), torch.tensor([1.0, 0.0, 0.0]))
    assert float(got) == pytest.approx(1.243234, abs=1e-6)
    assert ref.theory.two_layer_shapes(5, 4, 3, 8)["A1"] == (4, 8)


@settings(max_examples=30)
@given(seeds, st.floats(1e-4, 1.0), st.floats(0.0, 1.0))
def test_l2_update_equals_sgd_weight_decay(ref, seed, lr, weight_decay):
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(5, generator=generator, dtype=torch.float64)
    grad = torch.randn(5, generator=generator, dtype=torch.float64)
    parameter = torch.nn.Parameter(w.clone())
    optimizer = torch.optim.SGD([parameter], lr=lr, weight_decay=weight_decay)
    parameter.grad = grad.clone()
    optimizer.step()
    torch.testing.assert_close(ref.theory.l2_regularized_update(w, grad, lr, weight_decay), parameter.detach())


# -- mixup -----------------------------------------------------------------------------

@settings(max_examples=60)
@given(seeds, st.integers(1, 16), st.integers(2, 12), st.floats(0, 1), st.floats(0.1, 50))
def test_soft_target_cross_entropy_equals_torch(ref, seed, batch, classes, lam, scale):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=generator, dtype=torch.float64) * scale
    labels = torch.randint(0, classes, (batch,), generator=generator)
    permutation = torch.randperm(batch, generator=generator)
    images = torch.randn(batch, 1, 2, 2, generator=generator, dtype=torch.float64)
    mixed, targets = ref.mixup.mixup_batch(images, labels, classes, lam, permutation)
    torch.testing.assert_close(mixed, lam * images + (1 - lam) * images[permutation])
    torch.testing.assert_close(targets.sum(1), torch.ones(batch))
    targets = targets.double()
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    got = ref.mixup.soft_target_cross_entropy(a, targets)
    expected = F.cross_entropy(b, targets)
    torch.testing.assert_close(got, expected)
    got.backward()
    expected.backward()
    torch.testing.assert_close(a.grad, b.grad)
    # Mixed loss = lam * CE(labels) + (1 - lam) * CE(labels[permutation]).
    split = lam * F.cross_entropy(logits, labels) + (1 - lam) * F.cross_entropy(logits, labels[permutation])
    torch.testing.assert_close(got.detach(), split)


# -- data --------------------------------------------------------------------------------

@settings(max_examples=100)
@given(st.lists(st.integers(0, 9), min_size=0, max_size=200), seeds,
       st.sampled_from([(0.7, 0.1, 0.2), (0.5, 0.5), (1.0,), (0.25, 0.25, 0.25, 0.25), (0.0, 0.3, 0.7)]))
def test_stratified_split_properties(ref, labels, seed, ratios):
    parts = ref.wildlife_dataset.stratified_split(labels, ratios, seed)
    assert len(parts) == len(ratios)
    every = [i for part in parts for i in part]
    assert sorted(every) == list(range(len(labels)))  # complete and disjoint
    for part in parts:
        assert part == sorted(part)
    labels_t = torch.tensor(labels, dtype=torch.long)
    for c in set(labels):
        total = int((labels_t == c).sum())
        for part, ratio in zip(parts, ratios):
            share = int((labels_t[part] == c).sum()) if part else 0
            assert abs(share - ratio * total) <= 1 + 1e-9
    assert ref.wildlife_dataset.stratified_split(labels, ratios, seed) == parts


def test_stratified_split_rejects_bad_ratios(ref):
    with pytest.raises(ValueError, match="sum to 1"):
        ref.wildlife_dataset.stratified_split([0, 1], (0.7, 0.2))
    with pytest.raises(ValueError, match="-0.1"):
        ref.wildlife_dataset.stratified_split([0, 1], (1.1, -0.1))


# -- features ----------------------------------------------------------------------------

@settings(max_examples=30)
@given(seeds, st.integers(5, 40), st.integers(3, 8), st.integers(1, 3))
def test_pca_equals_sklearn_up_to_sign(ref, seed, count, dim, components):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(count, dim, generator=generator, dtype=torch.float64) * torch.arange(dim, 0, -1) + 3.0
    got = ref.visualize.pca(features, components)
    expected = torch.from_numpy(PCA(components).fit_transform(features.numpy()))
    signs = torch.sign((got * expected).sum(0))
    signs[signs == 0] = 1
    torch.testing.assert_close(got * signs, expected, atol=1e-8, rtol=1e-6)


def test_models_parameter_counts(ref):
    from torchvision.models.vgg import cfgs, make_layers

    cnn = ref.models.WildlifeCNN(10, 3, 224)
    assert sum(p.numel() for p in cnn.parameters()) == 93_248 + 128 * 14 * 14 * 10 + 10
    resnet = ref.models.ResNet18Classifier(10)
    assert sum(p.numel() for p in resnet.parameters()) == 11_181_642
    vgg = ref.models.VGG13(10, 3, 32, 64)
    expected = sum(p.numel() for p in make_layers(cfgs["B"]).parameters())  # torchvision's VGG13 features
    assert sum(p.numel() for p in vgg.features.parameters()) == expected == 9_404_992
    assert vgg(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
