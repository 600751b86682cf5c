"""Q2 public tests (16-824 S24): ResNet(num_classes), torchvision's ResNet-18 with ImageNet weights and a new head.

``resnet18(weights='IMAGENET1K_V1')`` loads the grader's seeded stand-in for the
ImageNet checkpoint (nothing is downloaded; ``grader.weights``): "ImageNet
weights" below means those. Two readings of the starter's "Define a FC layer here
to process the features" get full marks: ``resnet.fc`` replaced by
``Linear(512, num_classes)``, or ImageNet's 1000-way ``fc`` kept and
``Linear(1000, num_classes)`` added after it.
"""

from __future__ import annotations

import pytest
import torch

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.data.voc_course import find_key, head_of
from grader.student import module_info
from grader.weights import stand_in_state_dict

NUM_CLASSES = 20


def _resnet(student):
    return student.train_q2.ResNet(NUM_CLASSES)


def _head(model, call):
    info = module_info(model)
    name, shape = head_of(info, NUM_CLASSES)
    check(name is not None, f"no nn.Linear with {NUM_CLASSES} outputs in your model", call=call,
          hint="replace self.resnet.fc by nn.Linear(512, num_classes) (or add nn.Linear(1000, num_classes) after it)")
    return name, shape, info


def _resnet18_features(state, x):
    """ResNet-18's pooled features [N, 512] of ``x``, computed here with the student's own backbone tensors."""
    import torchvision

    local = torchvision.models.resnet18(weights=None)
    backbone = {}
    for key in local.state_dict():
        if key.startswith("fc."):
            continue
        mine = find_key(state, key)
        if mine is None:
            return None, key
        backbone[key] = state[mine]
    local.load_state_dict(backbone, strict=False)
    local.fc = torch.nn.Identity()
    with torch.no_grad():
        return local.eval()(x), None


def _check_head_input(student, model, name, shape, head_in, x, where):
    """What the new head received must be ResNet-18's pooled features (or ImageNet's fc of them, for a 1000-input head)."""
    state = student.import_library("builtins").dict(model.state_dict())
    features, missing = _resnet18_features(state, x)
    check(features is not None, f"your model has no tensor named like torchvision's {missing!r}", call=where,
          hint="keep torchvision's resnet18 (self.resnet = torchvision.models.resnet18(weights='IMAGENET1K_V1'))")
    readings = {512: [features]}
    fc = [k for k in state if k.endswith("fc.weight") and tuple(state[k].shape) == (1000, 512)]
    if fc:
        logits = features @ state[fc[0]].T + state[fc[0][:-len("weight")] + "bias"]
        readings[1000] = [logits, logits.clamp(min=0)]  # ImageNet's fc, then (or not) a ReLU before the new head
    expected = readings.get(shape[1])
    if expected is None:
        return  # a head of another width is test 2.3's
    got = head_in.reshape(head_in.shape[0], -1).float()
    for want in expected:
        if tuple(got.shape) == tuple(want.shape) and torch.allclose(got, want, rtol=1e-4, atol=1e-4):
            return
    assert_close(got, expected[0], call=where, rtol=1e-4, atol=1e-4, what=f"input of the head {name}",
                 hint="the new head must receive ResNet-18's features as torchvision's forward computes them (conv1, "
                      "bn1, relu, maxpool, layer1-4, avgpool, flatten): call self.resnet(x), or keep every one of "
                      "these steps in your own forward")


@pytest.mark.weight(5)
@pytest.mark.number("2.1")
def test_resnet_raw_outputs(student, set_mode):
    """ResNet(20): logits of shape [N, 20] at 224, 64 and 112 x 80 px: the new head's raw outputs, on ResNet-18's features"""
    call = describe_call("ResNet", NUM_CLASSES)
    model = _resnet(student)
    name, shape, _ = _head(model, call)
    set_mode(model, False)
    head = model.get_submodule(name) if name else model
    recorder = student.import_library("unittest.mock").Mock(return_value=None)
    handle = head.register_forward_hook(recorder)
    try:
        for size in ((2, 224, 224), (2, 64, 64), (3, 112, 80)):
            n, h, w = size
            x = torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(h + w))
            out = model(x)
            where = f"{call}(x[{n}, 3, {h}, {w}]) in eval mode"
            check(type(out) is torch.Tensor and tuple(out.shape) == (n, NUM_CLASSES),
                  f"expected logits of shape [{n}, 20], got {list(getattr(out, 'shape', []))}", call=where)
            head_in, head_out = recorder.call_args.args[1], recorder.call_args.args[2]
            assert_close(out, head_out, call=where, rtol=1e-5, atol=1e-6, what="output",
                         hint=f"forward must return the raw outputs of the new head ({name}): no softmax, sigmoid "
                              "or other layer after it (the loss and the evaluation apply their own)")
            if h == 112:  # the whole forward: the head sees ResNet-18's pooled features (a non-square batch of 3)
                _check_head_input(student, model, name, shape, head_in[0], x, where)
    finally:
        handle.remove()


@pytest.mark.weight(7)
@pytest.mark.number("2.2")
def test_resnet_imagenet_weights_except_last_layer(student):
    """ResNet(20): a new 20-way head, and ImageNet's weights on every ResNet-18 layer but the last"""
    call = describe_call("ResNet", NUM_CLASSES)
    model = _resnet(student)
    _head(model, call)  # the starter builds resnet18 with ImageNet weights: only with the student's head is it theirs
    state = student.import_library("builtins").dict(model.state_dict())
    imagenet = stand_in_state_dict("resnet18")
    for key, value in imagenet.items():
        if key.startswith("fc."):
            continue
        mine = find_key(state, key)
        check(mine is not None, f"your model has no tensor named like torchvision's {key!r}", call=call,
              hint="keep torchvision's resnet18 (self.resnet = torchvision.models.resnet18(weights='IMAGENET1K_V1'))")
        assert_equal(state[mine], value, call=call, what=mine,
                     hint="build resnet18 with weights='IMAGENET1K_V1' (ImageNet weights on every layer but the last)")


@pytest.mark.weight(3)
@pytest.mark.number("2.3")
def test_resnet_new_head(student):
    """ResNet(20): the last layer is a new, trainable Linear(512, 20) (or Linear(1000, 20) after ImageNet's fc)"""
    call = describe_call("ResNet", NUM_CLASSES)
    model = _resnet(student)
    name, shape, info = _head(model, call)
    check(shape[1] in (512, 1000), f"the head {name} is a Linear({shape[1]}, {shape[0]}); expected 512 inputs "
                                   "(ResNet-18's features) or 1000 (after ImageNet's fc)", call=call)
    trainable = {n: requires for n, _, requires, *_ in info["parameters"]}
    check(trainable.get(f"{name}.weight", False), f"the head's weight {name}.weight does not require gradients",
          call=call)
    if shape[1] == 1000:
        state = student.import_library("builtins").dict(model.state_dict())
        imagenet = stand_in_state_dict("resnet18")
        fc = [k for k in state if k.endswith("fc.weight") and tuple(state[k].shape) == (1000, 512)]
        check(bool(fc), "the head takes 1000 inputs, but the model has no 1000-way ImageNet fc before it", call=call)
        assert_equal(state[fc[0]], imagenet["fc.weight"], call=call, what=fc[0],
                     hint="with a head after ImageNet's fc, that fc keeps its ImageNet weights")


@pytest.mark.weight(3)
@pytest.mark.number("2.4")
def test_resnet_gradients_reach_backbone(student, set_mode):
    """ResNet(20): gradients reach layer1.1.conv1.weight and layer4.0.bn2.bias (the handout's histograms)"""
    call = describe_call("ResNet", NUM_CLASSES) + "(x[2, 3, 64, 64]) in train mode, then backward"
    model = _resnet(student)
    set_mode(model, True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(24))
    logits = model(x)
    check(type(logits) is torch.Tensor and tuple(logits.shape) == (2, NUM_CLASSES),
          f"expected logits of shape [2, 20], got {logits!r:.80}", call=call)
    connection = student.connection
    out = connection.request("call_sync", obj=model, args=[x], kwargs={}, hold=True, label=call)
    grad_output = torch.randn(2, NUM_CLASSES, generator=torch.Generator().manual_seed(25))
    student.import_library("torch.autograd").backward(out, grad_output)
    names = [n for n, *_ in module_info(model)["parameters"]]
    for suffix in ("layer1.1.conv1.weight", "layer4.0.bn2.bias"):
        key = find_key(names, suffix)
        check(key is not None, f"your model has no parameter named like {suffix!r}", call=call)
        grad = student.import_library("operator").attrgetter(f"{key}.grad")(model)  # a copy has no .grad
        check(grad is not None and bool(grad.abs().sum() > 0), f"{key} received no gradient", call=call,
              hint="fine-tune the whole network (Q2 asks for the gradient histograms of these layers): do not "
                   "freeze the backbone or detach its features")
