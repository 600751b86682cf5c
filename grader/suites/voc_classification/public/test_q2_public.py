"""Q2 public tests: the ResNet-18 classifier, training with TensorBoard logging, the t-SNE plot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.data.voc_classification import make_training_folder
from grader.student import module_info, num_parameters, student_raises

RESNET18_WITH_20_CLASSES = 11_689_512 - (512 * 1000 + 1000) + (512 * 20 + 20)


def imagenet_like_checkpoint(path, seed=0):
    """A torchvision resnet18 state dict with seeded random values (stands in for the ImageNet file)."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if "running" in name:
                buffer.uniform_(0.5, 1.5)
    state = model.state_dict()
    torch.save(state, path)
    return state


def student_state_dict(student, model):
    """The student's model's state dict as plain tensors."""
    return student.import_library("builtins").dict(model.state_dict())


def find_key(keys, suffix):
    """The key equal to ``suffix`` or, failing that, the shortest ending with ``.suffix`` (resnet18 may be wrapped,
    e.g. as ``self.resnet``: ``conv1.weight`` is then ``resnet.conv1.weight``, not ``resnet.layer1.0.conv1.weight``)."""
    found = sorted((k for k in keys if k == suffix or k.endswith("." + suffix)), key=len)
    return found[0] if found else None


# -- 2.1-2.3 ResNet ---------------------------------------------------------------------------------

@pytest.mark.weight(2)
@pytest.mark.number("2.1")
def test_resnet_head(student, set_mode):
    """ResNet: resnet18 whose 1000-way fc is replaced by a 20-way head"""
    call = describe_call("ResNet", 20)
    model = student.train_q2.ResNet(20)
    count = num_parameters(model)
    check(count == RESNET18_WITH_20_CLASSES,
          f"expected {RESNET18_WITH_20_CLASSES:,} parameters (resnet18 with a 512 -> 20 fc), got {count:,}",
          call=call, hint="replace resnet.fc by nn.Linear(512, num_classes) instead of adding a layer after it")
    shapes = {name: shape for name, shape, *_ in module_info(model)["parameters"]}
    head = find_key(shapes, "fc.weight")
    check(head is not None and tuple(shapes[head]) == (20, 512),
          f"expected a head fc.weight of shape [20, 512], got {shapes.get(head) if head else 'none'}", call=call)
    set_mode(model, False)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    out = model(x)
    check(type(out) is torch.Tensor and tuple(out.shape) == (2, 20),
          f"expected logits of shape [2, 20], got {list(getattr(out, 'shape', []))}", call=call + "(x[2, 3, 64, 64])")


@pytest.mark.weight(3)
@pytest.mark.number("2.2")
def test_resnet_loads_local_weights_except_head(student, sandbox_tmp_path):
    """ResNet(weights_path=...): every layer but the head comes from the local checkpoint"""
    path = sandbox_tmp_path / "resnet18-imagenet.pth"
    checkpoint = imagenet_like_checkpoint(path)
    call = describe_call("ResNet", 20, weights_path=str(path))
    model = student.train_q2.ResNet(20, weights_path=str(path))
    state = student_state_dict(student, model)
    for key, value in checkpoint.items():
        if key.startswith("fc."):
            continue
        mine = find_key(state, key)
        check(mine is not None, f"your model has no tensor named like {key!r}", call=call,
              hint="keep torchvision's resnet18 (e.g. as self.resnet) so that its layer names are unchanged")
        assert_equal(state[mine], value, call=call, what=mine,
                     hint="load the checkpoint into resnet18 (load_state_dict) before replacing fc")
    head = find_key(state, "fc.weight")
    check(head is not None and tuple(state[head].shape) == (20, 512),
          "expected a fresh fc.weight of shape [20, 512] after loading", call=call)


@pytest.mark.weight(1)
@pytest.mark.number("2.3")
def test_resnet_missing_weights_message(student, sandbox_tmp_path):
    """ResNet: a missing weights file raises FileNotFoundError with a clear message"""
    path = str(sandbox_tmp_path / "missing-checkpoint.pth")
    call = describe_call("ResNet", 20, weights_path=path)
    with student_raises("FileNotFoundError") as caught:
        student.train_q2.ResNet(20, weights_path=path)
    message = caught["error"].message
    check(path in message, f"the message should name the missing file; it was {message!r}", call=call)
    explanation = message.replace(path, "").lower()
    check(any(word in explanation for word in ("weights", "resnet", "download", "imagenet")),
          f"the message should say what the file is and how to get it; it was {message!r}", call=call,
          hint="e.g. 'ImageNet weights for ResNet-18 not found at ...: copy resnet18-f37072fd.pth there'")


# -- 2.6-2.7 training loop and TensorBoard ----------------------------------------------------------

def _tiny_model(student, out_features=20):
    nn = student.import_library("torch.nn")
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, out_features))


def _train(student, folder, model, scheduler=True, **hyper):
    optim = student.import_library("torch.optim")
    args = student.utils.ARGS(**hyper)
    args.num_workers = 0  # no loader processes inside the grader
    optimizer = optim.Adam(model.parameters(), lr=hyper.get("lr", 0.01))
    sched = optim.lr_scheduler.StepLR(optimizer, step_size=hyper.get("step_size", 1),
                                      gamma=hyper.get("gamma", 0.5)) if scheduler else None
    return student.trainer.train(args, model, optimizer, sched, "tiny")


@pytest.mark.weight(4)
@pytest.mark.number("2.6")
@pytest.mark.sandbox(call_timeout=180)
def test_train_logs_tensorboard(student, sandbox_tmp_path, worker_chdir, read_events):
    """train: Loss/train, map, learning_rate (StepLR) and per-parameter gradient histograms in TensorBoard"""
    make_training_folder(sandbox_tmp_path, trainval=16, test=20)
    model = _tiny_model(student)
    names = [name for name, *_ in module_info(model)["parameters"]]
    hyper = dict(epochs=2, batch_size=8, test_batch_size=10, inp_size=32, log_every=1, val_every=2, lr=0.01,
                 step_size=1, gamma=0.5, save_at_end=True)
    call = "train(ARGS(epochs=2, batch_size=8, inp_size=32, log_every=1, val_every=2, lr=0.01, step_size=1, " \
           "gamma=0.5, save_at_end=True), model, Adam, StepLR, 'tiny') on 16 trainval / 20 test images"
    with worker_chdir(sandbox_tmp_path):
        result = _train(student, sandbox_tmp_path, model, **hyper)
    events = read_events(sandbox_tmp_path)
    check(bool(events["runs"]), "no TensorBoard event file was written below the current folder", call=call,
          hint="log with torch.utils.tensorboard.SummaryWriter() and close() it at the end of train")
    scalars, histograms = events["scalars"], events["histograms"]
    check("Loss/train" in scalars, f"no scalar 'Loss/train'; scalars written: {sorted(scalars)}", call=call)
    losses = [v for _, v in scalars["Loss/train"]]
    check(len(losses) == 4 and all(math.isfinite(v) and v > 0 for v in losses),
          f"expected 4 finite positive 'Loss/train' values (4 iterations, log_every=1), got {losses}", call=call)
    check("map" in scalars and len(scalars["map"]) >= 2 and all(0 <= v <= 1 for _, v in scalars["map"]),
          f"expected 'map' values in [0, 1] at iterations 0 and 2, got {scalars.get('map')}", call=call)
    check("learning_rate" in scalars, f"no scalar 'learning_rate'; scalars written: {sorted(scalars)}", call=call,
          hint="after scheduler.step(), log scheduler.get_last_lr()[0] as 'learning_rate'")
    rates = [v for _, v in scalars["learning_rate"]]
    accepted = ([0.005, 0.0025], [0.01, 0.005])
    check(any(len(rates) == 2 and np.allclose(rates, a, rtol=1e-5) for a in accepted),
          f"expected 'learning_rate' once per epoch following StepLR(step_size=1, gamma=0.5) from lr 0.01, "
          f"i.e. [0.005, 0.0025] (or [0.01, 0.005]), got {rates}", call=call,
          hint="call scheduler.step() once per epoch")
    expected_tags = {f"{name}/grad" for name in names}
    missing = sorted(expected_tags - set(histograms))
    check(not missing, f"missing gradient histograms {missing}; histograms written: {sorted(histograms)[:10]}",
          call=call, hint="for name, p in model.named_parameters(): writer.add_histogram(f'{name}/grad', p.grad, cnt)")
    check(all(histograms[t] == 4 for t in expected_tags),
          f"expected each gradient histogram at the 4 logged iterations, got {dict(sorted(histograms.items()))}",
          call=call)
    check(isinstance(result, (list, tuple)) and len(result) == 2, f"train should return (ap, map), got {result!r:.80}",
          call=call)
    ap, mean_ap = result
    check(len(ap) == 20 and isinstance(float(mean_ap), float) and 0 <= float(mean_ap) <= 1,
          f"expected 20 AP values and a mAP in [0, 1], got {len(ap)} values and {mean_ap!r}", call=call)
    check((sandbox_tmp_path / "checkpoint-tiny-epoch2.pth").is_file(),
          "save_at_end=True should write checkpoint-tiny-epoch2.pth in the current folder", call=call)


@pytest.mark.weight(2)
@pytest.mark.number("2.7")
@pytest.mark.sandbox(call_timeout=180)
def test_train_resnet_gradient_histograms(student, sandbox_tmp_path, worker_chdir, read_events):
    """train on ResNet: gradient histograms of layer1.1.conv1.weight and layer4.0.bn2.bias"""
    make_training_folder(sandbox_tmp_path, trainval=8, test=20)
    model = student.train_q2.ResNet(20)
    count = len(module_info(model)["parameters"])
    with worker_chdir(sandbox_tmp_path):
        _train(student, sandbox_tmp_path, model, scheduler=False, epochs=1, batch_size=8, test_batch_size=20,
               inp_size=32, log_every=100, val_every=100, lr=1e-3)
    call = "train(ARGS(epochs=1, batch_size=8, inp_size=32), ResNet(20), Adam, None) on 8 trainval images"
    histograms = read_events(sandbox_tmp_path)["histograms"]
    for name in ("layer1.1.conv1.weight", "layer4.0.bn2.bias"):
        check(any(tag.endswith(f"{name}/grad") for tag in histograms),
              f"no gradient histogram for {name}; histograms written: {sorted(histograms)[:8]}...", call=call)
    grads = [t for t in histograms if t.endswith("/grad")]
    check(len(grads) == count, f"expected one gradient histogram per parameter ({count}), got {len(grads)}",
          call=call)


# -- 2.8-2.9 t-SNE colours and plot -----------------------------------------------------------------

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
@pytest.mark.number("2.8")
def test_label_colors_mean_rule(student):
    """label_colors: mean colour of the active classes, grey without any"""
    g = torch.Generator().manual_seed(8)
    labels, palette = random_labels(25, g), torch.rand(20, 3, generator=g)
    call = describe_call("label_colors", labels, palette)
    got = student.analysis.label_colors(labels, palette)
    assert_close(got, expected_colors(labels, palette), call=call, atol=1e-6, check_dtype=False,
                 hint="mean of palette[c] over the active classes c of each image; (0.5, 0.5, 0.5) for none")


@pytest.mark.weight(2)
@pytest.mark.number("2.9")
def test_plot_tsne_colours_and_legend(student, sandbox_tmp_path):
    """plot_tsne: a PNG whose points have the mean class colours and a legend of the 20 classes"""
    g = torch.Generator().manual_seed(9)
    labels, palette = random_labels(30, g), torch.rand(20, 3, generator=g)
    embedding = (torch.randn(30, 2, generator=g) * 10).double().numpy()
    names = [f"class{i}" for i in range(20)]
    path = sandbox_tmp_path / "tsne.png"
    call = describe_call("plot_tsne", embedding, labels, str(path), class_names=names, palette=palette)
    fig = student.analysis.plot_tsne(embedding, labels, str(path), class_names=names, palette=palette)
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
