"""2020 edition hidden tests (part ``tasks2020``): CaffeNet sizes and dropout, weight-loading reports, retrieval
edge cases, the t-SNE embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.student import call_keeping_inputs, module_info, student_raises

pytestmark = pytest.mark.part("tasks2020")


@pytest.mark.weight(1)
@pytest.mark.number("3.3")
@pytest.mark.parametrize(("inp_size", "flat_dim"), [(224, 6400), (127, 1024)])
def test_caffenet_other_sizes(student, inp_size, flat_dim, set_mode):
    """CaffeNet: flat_dim and output for other input sizes"""
    call = describe_call("CaffeNet", num_classes=5, inp_size=inp_size, c_dim=3)
    model = student.caffe_net.CaffeNet(num_classes=5, inp_size=inp_size, c_dim=3)
    assert_equal(model.flat_dim, flat_dim, call=call, what="flat_dim",
                 hint="each conv/pool maps a side s to (s + 2 * padding - kernel) // stride + 1")
    set_mode(model, False)
    out = model(torch.randn(1, 3, inp_size, inp_size, generator=torch.Generator().manual_seed(inp_size)))
    check(type(out) is torch.Tensor and tuple(out.shape) == (1, 5), f"expected [1, 5], got {list(out.shape)}",
          call=call)


@pytest.mark.weight(1)
@pytest.mark.number("3.4")
def test_caffenet_dropout_only_in_training(student, set_mode):
    """CaffeNet: dropout is active in train mode and off in eval mode"""
    model = student.caffe_net.CaffeNet(num_classes=20, inp_size=99, c_dim=3)
    x = torch.randn(2, 3, 99, 99, generator=torch.Generator().manual_seed(34))
    call = describe_call("CaffeNet(20, inp_size=99)", x)
    set_mode(model, False)
    a, b = model(x), model(x)
    assert_equal(a, b, call=call + " in eval mode, twice", hint="no randomness at evaluation time")
    set_mode(model, True)
    c, d = model(x), model(x)
    check(not torch.equal(c, d), "two forward passes in train mode gave identical outputs", call=call,
          hint="nn.Dropout(0.5) after fc1 and fc2")


# conv weight shapes of CaffeNet(c_dim=3) in layer order, with (stride, padding) and whether a max-pool follows.
CAFFENET_CONVS = [((96, 3, 11, 11), 4, 0, True), ((256, 96, 5, 5), 1, 2, True), ((384, 256, 3, 3), 1, 1, False),
                  ((384, 384, 3, 3), 1, 1, False), ((256, 384, 3, 3), 1, 1, True)]


@pytest.mark.weight(1)
@pytest.mark.number("3.15")
def test_caffenet_forward_values(student, set_mode):
    """CaffeNet in eval mode: ReLU after every convolution, max-pools after conv1, conv2, conv5, ReLU after fc1 and fc2"""
    model = student.caffe_net.CaffeNet(num_classes=6, inp_size=99, c_dim=3)
    call = describe_call("CaffeNet", num_classes=6, inp_size=99, c_dim=3)
    info = module_info(model)
    shapes = {name: tuple(shape) for name, shape, *_ in info["parameters"]}
    kinds = [(name, kind.rsplit(".", 1)[-1]) for name, kind in info["modules"]]
    convs = {shapes.get(f"{name}.weight"): name for name, kind in kinds if kind == "Conv2d"}
    linear = {shapes.get(f"{name}.weight"): name for name, kind in kinds if kind == "Linear"}
    layers = [convs.get(shape) for shape, *_ in CAFFENET_CONVS]
    linears = [linear.get(shape) for shape in ((4096, 1024), (4096, 4096), (6, 4096))]  # fc1, fc2, fc3
    check(None not in layers and None not in linears, "expected five nn.Conv2d and three nn.Linear of CaffeNet's "
          f"shapes (flat_dim 1024 at 99 x 99), got convolutions {sorted(k for k in convs if k)} and linear layers "
          f"{sorted(k for k in linear if k)}", call=call)
    attr = student.import_library("operator").attrgetter
    mock = student.import_library("unittest.mock")
    recorders = [mock.Mock(return_value=None) for _ in linears]
    handles = [model.get_submodule(name).register_forward_hook(r) for name, r in zip(linears, recorders)]
    set_mode(model, False)
    x = torch.randn(2, 3, 99, 99, generator=torch.Generator().manual_seed(315))
    try:
        out = model(x)
        seen = [(r.call_args.args[1][0], r.call_args.args[2]) if r.called else None for r in recorders]
    finally:
        for handle in handles:
            handle.remove()
    where = call + "(x[2, 3, 99, 99]) in eval mode"
    check(None not in seen, "forward did not call all three fully connected layers", call=where)
    h = x
    with torch.no_grad():
        for name, (_, stride, padding, pooled) in zip(layers, CAFFENET_CONVS):
            bias = attr(f"{name}.bias")(model)
            h = F.relu(F.conv2d(h, attr(f"{name}.weight")(model).detach(), None if bias is None else bias.detach(),
                                stride=stride, padding=padding))
            if pooled:
                h = F.max_pool2d(h, 3, 2)
    steps = [(seen[0][0], h.flatten(1), f"input of {linears[0]} (fc1)",
              "conv -> ReLU for all five convolutions, a 3 x 3 max-pool of stride 2 after conv1, conv2 and conv5, "
              "then flatten"),
             (seen[1][0], F.relu(seen[0][1]), f"input of {linears[1]} (fc2)", "fc1 -> ReLU -> dropout -> fc2"),
             (seen[2][0], F.relu(seen[1][1]), f"input of {linears[2]} (fc3)", "fc2 -> ReLU -> dropout -> fc3"),
             (out, seen[2][1], "output", "forward returns fc3's output (logits: no ReLU, softmax or sigmoid)")]
    for got, expected, what, hint in steps:
        assert_close(got.reshape(expected.shape) if got.numel() == expected.numel() else got, expected, call=where,
                     rtol=1e-4, atol=1e-4, what=what, hint=hint)


@pytest.mark.weight(2)
@pytest.mark.number("3.7")
def test_load_pretrained_weights_report(student):
    """load_pretrained_weights: longest prefix wins, shape mismatches skipped and reported"""
    nn = student.import_library("torch.nn")
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    before = student.import_library("builtins").dict(model.state_dict())
    g = torch.Generator().manual_seed(37)
    checkpoint = {
        "module.0.weight": torch.randn(5, 4, generator=g),      # module. -> "" : loaded
        "module.0.bias": torch.randn(5, generator=g),
        "module.head.weight": torch.randn(7, 5, generator=g),   # module.head. -> 2. (longest): shape mismatch
        "module.head.bias": torch.randn(3, generator=g),        # loaded
        "module.aux.weight": torch.randn(2, generator=g),       # -> aux.weight: unexpected
    }
    name_map = {"module.": "", "module.head.": "2."}
    call = describe_call("load_pretrained_weights", "<Sequential(Linear(4, 5), ReLU, Linear(5, 3))>", checkpoint,
                         name_map=name_map)
    report = student.caffe_net.load_pretrained_weights(model, checkpoint, name_map=name_map)
    state = student.import_library("builtins").dict(model.state_dict())
    assert_equal(state["0.weight"], checkpoint["module.0.weight"], call=call, what="model 0.weight")
    assert_equal(state["2.bias"], checkpoint["module.head.bias"], call=call, what="model 2.bias",
                 hint="when several prefixes match, the longest one wins")
    assert_equal(state["2.weight"], before["2.weight"], call=call, what="model 2.weight",
                 hint="a tensor of another shape must not be copied")
    check(isinstance(report, dict), f"expected a report dict, got {type(report).__name__}", call=call)
    expected = {"loaded": ["0.bias", "0.weight", "2.bias"], "missing": ["2.weight"], "unexpected": ["aux.weight"],
                "mismatched": ["2.weight"]}
    for key, value in expected.items():
        assert_equal(sorted(report.get(key, [])), value, call=call, what=f"report[{key!r}]")


@pytest.mark.weight(1)
@pytest.mark.number("3.9")
def test_nearest_neighbors_self_and_errors(student):
    """nearest_neighbors: a query from the gallery finds itself first; bad k raises ValueError"""
    g = torch.Generator().manual_seed(39)
    gallery = torch.randn(40, 6, generator=g)
    query = gallery[[3, 17, 39]]
    call = describe_call("nearest_neighbors", query, gallery, 4)
    indices, distances = call_keeping_inputs(student.analysis.nearest_neighbors, query, gallery, 4)
    assert_equal(indices[:, 0], torch.tensor([3, 17, 39]), call=call, what="indices[:, 0]")
    assert_close(distances[:, 0], torch.zeros(3, dtype=distances.dtype), call=call, atol=1e-6, what="distances[:, 0]")
    check(bool((distances[:, 1:] >= distances[:, :-1]).all()), "distances must increase along each row", call=call)
    with student_raises("ValueError"):
        student.analysis.nearest_neighbors(query, gallery, 41)


@pytest.mark.weight(1)
@pytest.mark.number("3.11")
def test_extract_features_in_eval_mode(student, set_mode):
    """extract_features: runs in evaluation mode (no dropout), in batches, flattened"""
    nn = student.import_library("torch.nn")
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.Dropout(0.5), nn.Conv2d(3, 2, 1))
    g = torch.Generator().manual_seed(311)
    w1, b1, w2, b2 = torch.randn(3, 2, 1, 1, generator=g), torch.randn(3, generator=g), \
        torch.randn(2, 3, 1, 1, generator=g), torch.randn(2, generator=g)
    model.load_state_dict({"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2})
    set_mode(model, True)
    images = torch.randn(9, 2, 3, 3, generator=g)
    call = describe_call("extract_features", "<Sequential(conv, dropout, conv)>", images, "2", batch_size=4)
    got = student.analysis.extract_features(model, images, "2", batch_size=4)
    expected = F.conv2d(F.conv2d(images, w1, b1), w2, b2).flatten(1)
    assert_close(got, expected, call=call, atol=1e-5, hint="call model.eval() while extracting (dropout off)")
    check(model.training is True, "the model was left in evaluation mode; restore its mode", call=call)


@pytest.mark.weight(1)
@pytest.mark.number("3.14")
def test_tsne_embedding_separates_clusters(student):
    """tsne_embedding: 2-D, deterministic for a seed, keeps separated clusters apart"""
    g = torch.Generator().manual_seed(10)
    centres = torch.randn(3, 16, generator=g) * 20
    features = torch.cat([centres[k] + torch.randn(15, 16, generator=g) for k in range(3)])
    cluster = np.repeat(np.arange(3), 15)
    call = describe_call("tsne_embedding", features, seed=0)
    first = call_keeping_inputs(student.analysis.tsne_embedding, features, seed=0)
    second = student.analysis.tsne_embedding(features, seed=0)
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    check(first.shape == (45, 2) and bool(np.isfinite(first).all()), f"expected finite [45, 2], got {first.shape}",
          call=call)
    check(bool(np.allclose(first, second)), "two calls with seed=0 gave different embeddings", call=call,
          hint="pass random_state=seed to sklearn.manifold.TSNE")
    distances = ((first[:, None] - first[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    purity = (cluster[distances.argmin(1)] == cluster).mean()
    check(bool(purity >= 0.95), f"only {purity:.0%} of the points have a nearest neighbour of their own cluster", call=call)
