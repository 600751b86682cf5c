"""2020 edition public tests (part ``tasks2020``): MNIST SimpleCNN, CaffeNet, conv1 filters, renamed weights,
nearest neighbours, and the t-SNE plot of Q2 (analysis.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from grader.compare import assert_close, assert_equal, check, describe_call, first_close
from grader.student import call_keeping_inputs, module_info, num_parameters

pytestmark = pytest.mark.part("tasks2020")

CAFFENET_PARAMETERS = 58_363_284  # conv 34,944 + 614,656 + 885,120 + 1,327,488 + 884,992; fc 37,752,832 + 16,781,312 + 81,940


@pytest.mark.weight(2)
@pytest.mark.number("3.1")
def test_mnist_simple_cnn(student):
    """SimpleCNN for MNIST: 454,922 parameters, flat_dim 3136, conv-ReLU-pool x2, fc-fc (or fc-ReLU-fc)"""
    call = describe_call("SimpleCNN", num_classes=10, inp_size=28, c_dim=1)
    model = student.simple_cnn.SimpleCNN(num_classes=10, inp_size=28, c_dim=1)
    assert_equal(model.flat_dim, 3136, call=call, what="flat_dim")
    count = num_parameters(model)
    check(count == 454_922, f"expected 454,922 parameters, got {count:,}", call=call)
    state = student.import_library("builtins").dict(model.state_dict())
    get = {k.split(".")[0] + "." + k.rsplit(".", 1)[1]: v for k, v in state.items()}  # fc1.0.weight -> fc1.weight
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(31))
    h = F.avg_pool2d(F.relu(F.conv2d(x, get["conv1.weight"], get["conv1.bias"], padding=2)), 2)
    h = F.avg_pool2d(F.relu(F.conv2d(h, get["conv2.weight"], get["conv2.bias"], padding=2)), 2)
    h = F.linear(h.flatten(1), get["fc1.weight"], get["fc1.bias"])
    # The S24 starter's fc1 has no non-linearity (get_fc(..., 'none')); the 2020 edition's had a ReLU.
    readings = [F.linear(h, get["fc2.weight"], get["fc2.bias"]), F.linear(F.relu(h), get["fc2.weight"],
                                                                           get["fc2.bias"])]
    got = model(x)
    assert_close(got, first_close(got, readings, rtol=1e-4, atol=1e-4), call=call + "(x[3, 1, 28, 28])", atol=1e-4,
                 rtol=1e-4, hint="conv1 -> ReLU -> avgpool -> conv2 -> ReLU -> avgpool -> flatten -> fc1 -> fc2")


@pytest.mark.weight(2)
@pytest.mark.number("3.2")
def test_caffenet_architecture(student, set_mode):
    """CaffeNet: layer shapes, 58,363,284 parameters, flat_dim 9216, [N, 20] output at 227 x 227"""
    call = describe_call("CaffeNet", num_classes=20, inp_size=227, c_dim=3)
    model = student.caffe_net.CaffeNet(num_classes=20, inp_size=227, c_dim=3)
    assert_equal(model.flat_dim, 9216, call=call, what="flat_dim", hint="256 channels x 6 x 6 after pool5")
    info = module_info(model)
    shapes = sorted(tuple(shape) for _, shape, *_ in info["parameters"] if len(shape) == 4)
    expected = sorted([(96, 3, 11, 11), (256, 96, 5, 5), (384, 256, 3, 3), (384, 384, 3, 3), (256, 384, 3, 3)])
    check(shapes == expected, f"expected convolution weights {expected}, got {shapes}", call=call)
    check(info["num_parameters"] == CAFFENET_PARAMETERS,
          f"expected {CAFFENET_PARAMETERS:,} parameters, got {info['num_parameters']:,}", call=call)
    set_mode(model, False)
    out = model(torch.randn(2, 3, 227, 227, generator=torch.Generator().manual_seed(32)))
    check(type(out) is torch.Tensor and tuple(out.shape) == (2, 20),
          f"expected logits of shape [2, 20], got {list(getattr(out, 'shape', []))}", call=call + "(x[2, 3, 227, 227])")


@pytest.mark.weight(2)
@pytest.mark.number("3.5")
@pytest.mark.parametrize(("shape", "nrow"), [((96, 3, 11, 11), 12), ((32, 1, 5, 5), 8), ((10, 3, 4, 4), 4)])
def test_filter_grid(student, shape, nrow):
    """filter_grid: each filter min-max scaled to [0, 1], nrow per row, white padding; the weights left unchanged"""
    weight = torch.randn(*shape, generator=torch.Generator().manual_seed(shape[0]))
    weight[1] = 0.25  # a constant filter
    call = describe_call("filter_grid", weight, nrow=nrow, padding=1)
    got = call_keeping_inputs(student.analysis.filter_grid, weight, nrow=nrow, padding=1)  # the model's own weights
    expected = torchvision.utils.make_grid(weight.clone(), nrow=nrow, padding=1, normalize=True, scale_each=True,
                                           pad_value=1.0)
    assert_close(got, expected, call=call, atol=1e-5, check_dtype=False,
                 hint="scale each filter on its own: (w - w.min()) / (w.max() - w.min()); pad with 1.0")


@pytest.mark.weight(3)
@pytest.mark.number("3.6")
def test_load_pretrained_weights_renamed(student):
    """load_pretrained_weights: copies a checkpoint whose names differ through a prefix map"""
    nn = student.import_library("torch.nn")
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(36)
    checkpoint = {
        "module.backbone.conv.weight": torch.randn(2, 1, 3, 3, generator=g),
        "module.backbone.conv.bias": torch.randn(2, generator=g),
        "module.backbone.bn.weight": torch.rand(2, generator=g),
        "module.backbone.bn.bias": torch.randn(2, generator=g),
        "module.backbone.bn.running_mean": torch.randn(2, generator=g),
        "module.backbone.bn.running_var": torch.rand(2, generator=g) + 0.5,
        "module.backbone.bn.num_batches_tracked": torch.tensor(7),
        "module.head.weight": torch.randn(3, 8, generator=g),
        "module.head.bias": torch.randn(3, generator=g),
    }
    name_map = {"module.backbone.conv.": "0.", "module.backbone.bn.": "1.", "module.head.": "3."}
    call = describe_call("load_pretrained_weights", "<Sequential(conv, bn, flatten, linear)>", checkpoint,
                         name_map=name_map)
    report = student.caffe_net.load_pretrained_weights(model, checkpoint, name_map=name_map)
    state = student.import_library("builtins").dict(model.state_dict())
    for old, value in checkpoint.items():
        new = name_map[next(p for p in name_map if old.startswith(p))] + old.rsplit(".", 1)[1]
        assert_equal(state[new], value, call=call, what=f"model {new}",
                     hint="rename each checkpoint key (replace the prefix), then copy the tensor into the model")
    check(isinstance(report, dict), f"expected a report dict, got {type(report).__name__}", call=call)
    assert_equal(sorted(report.get("loaded", [])), sorted(state), call=call, what="report['loaded']")
    for key in ("missing", "unexpected", "mismatched"):
        assert_equal(list(report.get(key, [None])), [], call=call, what=f"report[{key!r}]")


@pytest.mark.weight(2)
@pytest.mark.number("3.8")
def test_nearest_neighbors_match_sklearn(student):
    """nearest_neighbors: the k closest gallery rows (Euclidean), nearest first, as scikit-learn finds them; inputs unchanged"""
    from sklearn.neighbors import NearestNeighbors

    g = torch.Generator().manual_seed(38)
    gallery, query = torch.randn(60, 9, generator=g), torch.randn(7, 9, generator=g)
    call = describe_call("nearest_neighbors", query, gallery, 5)
    got = call_keeping_inputs(student.analysis.nearest_neighbors, query, gallery, 5)
    check(isinstance(got, (list, tuple)) and len(got) == 2, f"expected (indices, distances), got {got!r:.80}",
          call=call)
    distances, indices = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(gallery.double().numpy()) \
        .kneighbors(query.double().numpy())
    assert_equal(got[0], torch.from_numpy(indices).long(), call=call, what="indices",
                 hint="sort every row of the query-gallery distance matrix, nearest first")
    assert_close(got[1], torch.from_numpy(distances), call=call, what="distances", rtol=1e-5, atol=1e-6,
                 check_dtype=False, hint="Euclidean distances (the square root of the squared distances)")


@pytest.mark.weight(2)
@pytest.mark.number("3.10")
def test_extract_features_hook(student, set_mode):
    """extract_features: a layer's outputs through a forward hook, hook removed, mode restored (train or eval)"""
    nn = student.import_library("torch.nn")
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3))
    g = torch.Generator().manual_seed(310)
    w1, b1, w2, b2 = torch.randn(6, 12, generator=g), torch.randn(6, generator=g), torch.randn(3, 6, generator=g), \
        torch.randn(3, generator=g)
    model.load_state_dict({"1.weight": w1, "1.bias": b1, "3.weight": w2, "3.bias": b2})
    set_mode(model, True)
    images = torch.randn(10, 3, 2, 2, generator=g)
    call = describe_call("extract_features", "<Sequential>", images, "2", batch_size=4)
    got = student.analysis.extract_features(model, images, "2", batch_size=4)
    assert_close(got, F.relu(F.linear(images.flatten(1), w1, b1)), call=call, atol=1e-5,
                 hint="register_forward_hook on dict(model.named_modules())[layer] and keep its outputs, flattened")
    check(model.training is True, "the model was left in evaluation mode; restore its mode", call=call)
    check(len(model[2]._forward_hooks) == 0, "the forward hook is still registered after the call", call=call,
          hint="keep the handle of register_forward_hook and call handle.remove()")
    # Called on a model in evaluation mode, it leaves it in evaluation mode (restored, not set to train).
    set_mode(model, False)
    again = student.analysis.extract_features(model, images, "2", batch_size=4)
    assert_close(again, got, call=call + " on the model in eval mode", atol=1e-6)
    check(model.training is False, "called on a model in evaluation mode, extract_features left it in training mode",
          call=call + " on the model in eval mode",
          hint="keep was_training = model.training before model.eval(), and call model.train(was_training) after")


# -- 3.12-3.13 t-SNE colours and plot (Q2's t-SNE figure; the S24 starter has no file for it) -----------------------------------------------------------------

def expected_colors(labels, palette):
    active = labels > 0
    out = torch.full((labels.shape[0], 3), 0.5, dtype=torch.float64)
    for row in range(labels.shape[0]):
        if active[row].any():
            out[row] = palette.double()[active[row]].mean(0)
    return out.float()


def random_labels(n, g):
    labels = (torch.rand(n, 20, generator=g) < 0.12).float()
    labels[0] = 0
    labels[1, 3] = 1
    labels[2, :] = 1
    return labels


@pytest.mark.weight(2)
@pytest.mark.number("3.12")
def test_label_colors_mean_rule(student):
    """label_colors: mean colour of the active classes, grey without any"""
    g = torch.Generator().manual_seed(8)
    labels, palette = random_labels(25, g), torch.rand(20, 3, generator=g)
    call = describe_call("label_colors", labels, palette)
    got = call_keeping_inputs(student.analysis.label_colors, labels, palette)
    assert_close(got, expected_colors(labels, palette), call=call, atol=1e-6, check_dtype=False,
                 hint="mean of palette[c] over the active classes c of each image; (0.5, 0.5, 0.5) for none")


@pytest.mark.weight(2)
@pytest.mark.number("3.13")
def test_plot_tsne_colours_and_legend(student, sandbox_tmp_path):
    """plot_tsne: a PNG whose points have the mean class colours and a legend of the 20 classes"""
    g = torch.Generator().manual_seed(9)
    labels, palette = random_labels(30, g), torch.rand(20, 3, generator=g)
    embedding = (torch.randn(30, 2, generator=g) * 10).double().numpy()
    names = [f"class{i}" for i in range(20)]
    path = sandbox_tmp_path / "tsne.png"
    call = describe_call("plot_tsne", embedding, labels, str(path), class_names=names, palette=palette)
    fig = call_keeping_inputs(student.analysis.plot_tsne, embedding, labels, str(path), class_names=names,
                              palette=palette)
    check(path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no PNG was written at {path}",
          call=call)
    numpy = student.import_library("numpy")
    ax = fig.axes[0]
    points, colours = [], []
    for collection in ax.collections:
        offsets = numpy.asarray(collection.get_offsets(), dtype="float64")
        faces = numpy.asarray(collection.get_facecolors(), dtype="float64")
        if offsets.ndim != 2 or len(offsets) == 0 or len(faces) == 0:
            continue
        points.append(offsets)
        colours.append(np.broadcast_to(faces, (len(offsets), 4)) if len(faces) == 1 else faces)
    check(bool(points), "the axes hold no scatter points", call=call)
    points, colours = np.concatenate(points), np.concatenate(colours)
    expected = expected_colors(labels, palette).double().numpy()
    for row in range(30):
        match = np.nonzero((np.abs(points - embedding[row]) < 1e-9).all(1))[0]
        check(len(match) >= 1, f"point {row} {embedding[row].tolist()} is not in the scatter plot", call=call)
        check(np.allclose(colours[match[0], :3], expected[row], atol=2e-3),
              f"point {row} is drawn in {colours[match[0], :3].round(3).tolist()}, expected the mean colour of "
              f"its classes {expected[row].round(3).tolist()}", call=call)
    legend = ax.get_legend()
    check(legend is not None, "the plot has no legend", call=call, hint="ax.legend(handles=[...], ...)")
    texts = [t.get_text() for t in legend.get_texts()]
    check(texts == names, f"expected legend entries {names[:3]}... in class order, got {texts[:5]}...", call=call)
