"""The reference against independent oracles: scikit-learn, float64 torch, torchvision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import average_precision_score
from sklearn.neighbors import NearestNeighbors

# -- compute_ap == sklearn --------------------------------------------------------------------------


def sklearn_ap(gt, pred, valid):
    out = []
    for c in range(gt.shape[1]):
        keep = valid[:, c] > 0
        y = gt[keep, c]
        out.append(average_precision_score(y, pred[keep, c]) if y.sum() > 0 else np.nan)
    return np.array(out)


@st.composite
def ap_inputs(draw, with_invalid: bool):
    n = draw(st.integers(1, 40))
    c = draw(st.integers(1, 8))
    gt = draw(hnp.arrays(np.int64, (n, c), elements=st.integers(0, 1)))
    # Coarse scores give many ties (within and across labels); fine ones none.
    coarse = draw(st.booleans())
    elements = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) if coarse else \
        st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
    pred = draw(hnp.arrays(np.float64, (n, c), elements=elements))
    valid = draw(hnp.arrays(np.int64, (n, c), elements=st.integers(0, 1))) if with_invalid else np.ones((n, c))
    return gt, pred, valid


@settings(max_examples=150)
@given(ap_inputs(with_invalid=False))
def test_compute_ap_equals_sklearn(ref, inputs):
    gt, pred, valid = inputs
    np.testing.assert_allclose(ref.metrics.compute_ap(gt, pred, valid), sklearn_ap(gt, pred, valid), rtol=1e-12,
                               atol=1e-12, equal_nan=True)


@settings(max_examples=150)
@given(ap_inputs(with_invalid=True))
def test_compute_ap_equals_sklearn_on_valid_rows(ref, inputs):
    gt, pred, valid = inputs
    np.testing.assert_allclose(ref.metrics.compute_ap(gt, pred, valid), sklearn_ap(gt, pred, valid), rtol=1e-12,
                               atol=1e-12, equal_nan=True)


def test_compute_ap_accepts_tensors_and_macro(ref):
    g = torch.Generator().manual_seed(0)
    gt = (torch.rand(30, 5, generator=g) < 0.4).float()
    pred = torch.rand(30, 5, generator=g)
    valid = torch.ones(30, 5)
    per_class = ref.metrics.compute_ap(gt, pred, valid)
    assert per_class.dtype == np.float64 and per_class.shape == (5,)
    assert ref.metrics.compute_ap(gt, pred, valid, average="macro") == pytest.approx(per_class.mean())
    with pytest.raises(ValueError, match="'weighted'"):
        ref.metrics.compute_ap(gt, pred, valid, average="weighted")
    with pytest.raises(ValueError, match=r"\(30, 4\)"):
        ref.metrics.compute_ap(gt, pred[:, :4], valid)


# -- the loss, inline in trainer.train() == float64 BCE -----------------------------------------------

loss_inputs = st.integers(1, 6).flatmap(lambda n: st.integers(1, 20).flatmap(lambda c: st.tuples(
    hnp.arrays(np.float32, (n, c), elements=st.floats(-1e4, 1e4, width=32)),
    hnp.arrays(np.float32, (n, c), elements=st.sampled_from([0.0, 1.0])),
    hnp.arrays(np.float32, (n, c), elements=st.sampled_from([0.0, 0.5, 1.0, 2.0])))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(loss_inputs)
def test_loss_in_train_equals_float64_bce(train_on_logits, inputs):
    x, y, w = (torch.from_numpy(a) for a in inputs)
    x64 = x.double().requires_grad_(True)
    expected = F.binary_cross_entropy_with_logits(x64, y.double(), weight=w.double())
    expected.backward()
    logged, grad = train_on_logits(x, y, w)
    assert np.isfinite(logged) and torch.isfinite(grad).all()
    assert logged == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    # float32 gradients: (sigmoid(x) - y) w / (N C), exact up to float32 rounding.
    torch.testing.assert_close(grad.double(), x64.grad, rtol=1e-4, atol=1e-8)


def test_loss_finite_at_extremes_and_exact_gradient_at_zero(train_on_logits):
    x = torch.tensor([[1e4, -1e4, 0.0, 1e3, -1e3, 88.7, -88.7]])
    y = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]])
    logged, grad = train_on_logits(x, y, torch.ones_like(y))
    expected = F.binary_cross_entropy_with_logits(x.double(), y.double())
    assert np.isfinite(logged) and logged == pytest.approx(expected.item(), rel=1e-6)
    # At x = 0 the derivative is sigmoid(0) - y = -0.5 (divided by the 7 entries): no subgradient artefact.
    assert grad[0, 2].item() == pytest.approx(-0.5 / 7, rel=1e-6)
    torch.testing.assert_close(grad, ((torch.sigmoid(x.double()) - y) / 7).float())


def test_loss_uses_no_builtin_bce(train_on_logits, monkeypatch):
    def banned(*args, **kwargs):
        raise AssertionError("built-in BCE used")

    for name in ("binary_cross_entropy_with_logits", "binary_cross_entropy"):
        monkeypatch.setattr(F, name, banned)
    monkeypatch.setattr(torch, "binary_cross_entropy_with_logits", banned)
    monkeypatch.setattr(torch.nn, "BCEWithLogitsLoss", banned)
    monkeypatch.setattr(torch.nn, "BCELoss", banned)
    logged, _ = train_on_logits(torch.randn(3, 20), torch.ones(3, 20), torch.ones(3, 20))
    assert np.isfinite(logged)


# -- eval_dataset_map --------------------------------------------------------------------------------

def test_eval_dataset_map_whole_set_sigmoid(ref):
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 20))
    batches = [(torch.randn(k, 3, 2, 2, generator=g), (torch.rand(k, 20, generator=g) < 0.4).float(),
                (torch.rand(k, 20, generator=g) < 0.9).float()) for k in (7, 9, 4)]
    ap, mean_ap = ref.metrics.eval_dataset_map(model, "cpu", batches)
    data = torch.cat([b[0] for b in batches])
    with torch.no_grad():
        scores = torch.sigmoid(model(data)).numpy()
    gt, valid = torch.cat([b[1] for b in batches]).numpy(), torch.cat([b[2] for b in batches]).numpy()
    expected = sklearn_ap(gt, scores, valid)
    np.testing.assert_allclose(ap, expected, rtol=1e-7, equal_nan=True)
    assert mean_ap == pytest.approx(np.nanmean(expected))
    # The handout's version (softmax, AP per batch) gives another number on the same data.
    softmax_scores = torch.softmax(model(data), dim=-1).detach().numpy()
    assert not np.allclose(sklearn_ap(gt, softmax_scores, valid), expected, equal_nan=True)


# -- models --------------------------------------------------------------------------------------------

def test_simple_cnn_parameters_and_flat_dims(ref):
    mnist = ref.simple_cnn.SimpleCNN(num_classes=10, inp_size=28, c_dim=1)
    assert sum(p.numel() for p in mnist.parameters()) == 454_922 and mnist.flat_dim == 3136
    for size in (28, 30, 31, 32, 64, 227):
        model = ref.simple_cnn.SimpleCNN(num_classes=20, inp_size=size, c_dim=3)
        assert model(torch.zeros(1, 3, size, size)).shape == (1, 20)
        assert model.flat_dim == 64 * (size // 4) ** 2
    with pytest.raises(ValueError, match="'tanh'"):
        ref.simple_cnn.get_fc(3, 4, "tanh")


def test_caffenet_against_seed_architecture(ref):
    model = ref.caffe_net.CaffeNet()
    assert model.flat_dim == 9216
    assert sum(p.numel() for p in model.parameters()) == 58_363_284
    model.eval()
    x = torch.randn(1, 3, 227, 227)
    assert model.features(x).shape == (1, 256, 6, 6)
    assert torch.equal(model(x), model(x))
    with pytest.raises(ValueError, match="50"):
        ref.caffe_net.CaffeNet(inp_size=50)


def test_alexnet_weights_into_caffenet(ref):
    """The 2020 task 4: torchvision AlexNet names mapped onto CaffeNet; only same-shape tensors load."""
    alexnet = torchvision.models.alexnet(weights=None)
    model = ref.caffe_net.CaffeNet()
    report = ref.caffe_net.load_pretrained_weights(model, alexnet.state_dict(), ref.caffe_net.ALEXNET_TO_CAFFENET)
    caffenet_shapes = {k: v.shape for k, v in model.state_dict().items()}
    renamed = {ref.caffe_net.rename_key(k, ref.caffe_net.ALEXNET_TO_CAFFENET): v.shape
               for k, v in alexnet.state_dict().items()}
    assert report["loaded"] == sorted(k for k, shape in renamed.items() if caffenet_shapes[k] == shape)
    assert report["mismatched"] == sorted(k for k, shape in renamed.items() if caffenet_shapes[k] != shape)
    assert {"fc1.0.weight", "fc2.0.weight", "conv5.bias"} <= set(report["loaded"])
    assert "conv1.weight" in report["mismatched"] and "fc3.0.weight" in report["mismatched"]
    assert report["unexpected"] == [] and set(report["missing"]) == set(caffenet_shapes) - set(report["loaded"])
    assert torch.equal(model.fc1[0].weight, alexnet.classifier[1].weight)
    prefixed = {"module." + k: v for k, v in model.state_dict().items()}
    fresh = ref.caffe_net.CaffeNet()
    again = ref.caffe_net.load_pretrained_weights(fresh, prefixed, {"module.": ""})
    assert again["missing"] == [] and len(again["loaded"]) == 16
    with pytest.raises(ValueError, match="both renamed"):
        ref.caffe_net.load_pretrained_weights(fresh, {"a.x": torch.zeros(1), "b.x": torch.zeros(1)},
                                              {"a.": "", "b.": ""})


def test_resnet_imagenet_weights_and_new_head(ref, offline_resnet):
    """train_q2.ResNet as the starter writes it, resnet18(weights='IMAGENET1K_V1'), loads the seeded
    checkpoint offline: every layer but the head holds it; the head is a new Linear(512, 20)."""
    from grader.weights import stand_in_state_dict

    source = stand_in_state_dict("resnet18")
    model = ref.train_q2.ResNet(20)
    for name, tensor in source.items():
        if not name.startswith("fc."):
            assert torch.equal(model.resnet.state_dict()[name], tensor), name
    assert isinstance(model.resnet.fc, torch.nn.Linear) and model.resnet.fc.weight.shape == (20, 512)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.resnet(x))  # raw outputs: no sigmoid, no softmax


def test_args_rejects_unknown_keys(ref):
    args = ref.utils.ARGS(batch_size=3, use_cuda=False)
    assert args.batch_size == 3 and args.device == torch.device("cpu") and args.test_batch_size == 1000
    assert "args.batch_size = 3" in repr(args)
    with pytest.raises(ValueError, match="'batchsize'"):
        ref.utils.ARGS(batchsize=3)
    with pytest.raises(ValueError, match="device"):
        ref.utils.ARGS(device="cuda")


# -- analysis --------------------------------------------------------------------------------------------

@settings(max_examples=50)
@given(st.integers(1, 30), st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_nearest_neighbors_equal_sklearn(ref, gallery_size, dim, seed):
    g = torch.Generator().manual_seed(seed)
    gallery, query = torch.randn(gallery_size, dim, generator=g), torch.randn(5, dim, generator=g)
    k = min(3, gallery_size)
    indices, distances = ref.analysis.nearest_neighbors(query, gallery, k)
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(gallery.double().numpy())
    expected_d, expected_i = nn.kneighbors(query.double().numpy())
    np.testing.assert_allclose(distances.numpy(), expected_d, rtol=1e-9, atol=1e-9)
    # Indices agree except between rows at (numerically) equal distance.
    assert np.array_equal(indices.numpy(), expected_i) or np.allclose(
        np.sort(expected_d, 1), distances.numpy(), rtol=1e-9)


def test_label_colors_and_filter_grid(ref):
    labels = torch.tensor([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=torch.float32)
    palette = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    torch.testing.assert_close(ref.analysis.label_colors(labels, palette),
                               torch.tensor([[0.5, 0, 0.5], [0.5, 0.5, 0.5], [0, 1.0, 0]]))
    weight = torch.randn(7, 3, 5, 5)
    grid = ref.analysis.filter_grid(weight, nrow=3, padding=2)
    assert grid.shape == (3, 3 * 7 + 2, 3 * 7 + 2)
    cell = grid[:, 2:7, 2:7]
    assert cell.min() == 0 and cell.max() == 1 and grid[:, 0, :].eq(1).all()


def test_extract_features_hook_and_mode(ref):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Dropout(0.5),
                                torch.nn.Linear(3, 2))
    model.train()
    x = torch.randn(10, 1, 2, 2)
    got = ref.analysis.extract_features(model, x, "3", batch_size=3)
    with torch.no_grad():
        expected = model[3](model[1](x.flatten(1)))
    torch.testing.assert_close(got, expected)
    assert model.training and not model[3]._forward_hooks
    with pytest.raises(ValueError, match="'nope'"):
        ref.analysis.extract_features(model, x, "nope")


def test_tsne_plot_has_legend_and_colours(ref, tmp_path):
    g = torch.Generator().manual_seed(2)
    features = torch.cat([torch.randn(10, 8, generator=g) + 10 * k for k in range(3)])
    labels = torch.zeros(30, 20)
    labels[:10, 0] = 1
    labels[10:20, 5] = 1
    labels[20:, [0, 5]] = 1
    embedding = ref.analysis.tsne_embedding(features, seed=0)
    np.testing.assert_array_equal(embedding, ref.analysis.tsne_embedding(features, seed=0))
    fig = ref.analysis.plot_tsne(embedding, labels, str(tmp_path / "t.png"))
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(ref.analysis.CLASS_NAMES)
    palette = ref.analysis.class_palette()
    faces = ax.collections[0].get_facecolors()[:, :3]
    np.testing.assert_allclose(faces[25], ((palette[0] + palette[5]) / 2).numpy(), atol=1e-6)
