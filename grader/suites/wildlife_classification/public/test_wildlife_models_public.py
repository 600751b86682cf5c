"""Public tests of the models: the specified CNN (Q2.2a), ResNet-18 fine-tuning (Q2.3a), VGG13 (seed 004)."""

from __future__ import annotations

import os

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.student import num_parameters


def cnn_oracle(in_channels: int) -> nn.Sequential:
    """The convolutional trunk of Q2.2(a), written from the handout."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(4, 4),
        nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(64, 128, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
    )


@pytest.mark.weight(1)
@pytest.mark.number("2.2.1")
def test_cnn_conv_layers(student, tools):
    """Q2.2(a) WildlifeCNN: three 3x3 convolutions with 32, 64, 128 maps, in order"""
    model = student.models.WildlifeCNN(10, 3, 64)
    got = tools.parameter_shapes(model.features)
    expected = [(32, 3, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 64, 3, 3), (128,)]
    assert_equal(got, expected, what="parameter shapes of model.features",
                 hint="Conv2d(3, 32, 3), Conv2d(32, 64, 3), Conv2d(64, 128, 3) in an nn.Sequential named features")


@pytest.mark.weight(1)
@pytest.mark.number("2.2.1")
def test_cnn_trunk_matches_handout(student, tools):
    """Q2.2(a) WildlifeCNN.forward_features: conv/ReLU, max-pool 4/4 then 2/2 and 2/2, flattened"""
    model = student.models.WildlifeCNN(10, 3, 64)
    oracle = tools.seeded_(cnn_oracle(3), 0).eval()
    tools.copy_weights_by_order(oracle, model.features, "model.features")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = oracle(x).flatten(1)
    got = model.forward_features(x)
    assert_close(got, expected, call=describe_call("WildlifeCNN(10, 3, 64).forward_features", x), rtol=1e-4,
                 atol=1e-5, hint="padding 1, stride 1; MaxPool2d(4, 4) after the first conv, (2, 2) after the others; "
                                 "flatten to [N, 128 * (input_size // 16) ** 2]")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.2.1")
def test_cnn_head_and_logits(student):
    """Q2.2(a) WildlifeCNN head: a Linear on the flattened maps gives [N, num_classes] logits"""
    model = student.models.WildlifeCNN(7, 3, 32)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    logits = model(x)
    check(isinstance(logits, torch.Tensor) and tuple(logits.shape) == (3, 7),
          f"WildlifeCNN(7, 3, 32)(x of [3, 3, 32, 32]) should give [3, 7] logits, got {getattr(logits, 'shape', logits)}")
    head = model.classifier.state_dict()
    check(list(head) == ["weight", "bias"] and tuple(head["weight"].shape) == (7, 512),
          f"classifier should be nn.Linear(128 * (32 // 16) ** 2 = 512, 7), got parameters "
          f"{[(k, list(v.shape)) for k, v in head.items()]}")
    expected = model.forward_features(x) @ head["weight"].T + head["bias"]
    assert_close(logits, expected, call=describe_call("WildlifeCNN(7, 3, 32)", x), rtol=1e-4, atol=1e-5,
                 hint="forward = classifier(forward_features(x))")
    check(num_parameters(model) == 93_248 + 512 * 7 + 7,
          f"expected {93_248 + 512 * 7 + 7:,} parameters, got {num_parameters(model):,}")


@pytest.mark.weight(1)
@pytest.mark.number("2.3.1")
def test_resnet18_structure(student, keep):
    """Q2.3(a) ResNet18Classifier: torchvision ResNet-18 backbone, new 512 -> num_classes head giving the logits"""
    model = student.models.ResNet18Classifier(10)
    count = num_parameters(model)
    check(count == 11_176_512 + 5_130, f"expected 11,181,642 parameters (ResNet-18 without its 1000-way fc, plus a "
                                       f"512 -> 10 head), got {count:,}")
    keep(model.eval())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    features, logits = model.forward_features(x), model(x)
    check(tuple(features.shape) == (2, 512), f"forward_features should give [2, 512], got {list(features.shape)}")
    check(tuple(logits.shape) == (2, 10), f"forward should give [2, 10], got {list(logits.shape)}")
    head = model.fc.state_dict()
    assert_close(logits, features @ head["weight"].T + head["bias"], call=describe_call("ResNet18Classifier(10)", x),
                 rtol=1e-4, atol=1e-5, hint="forward returns the logits fc(forward_features(x)): no softmax, no ReLU")


@pytest.mark.weight(1.5)
@pytest.mark.number("2.3.1")
@pytest.mark.sandbox(call_timeout=120)
def test_resnet18_loads_local_checkpoint(student, sandbox_tmp_path, tools, keep):
    """Q2.3(a) ResNet18Classifier loads a local torchvision checkpoint (old 1000-way fc ignored)"""
    reference_net = tools.seeded_(torchvision.models.resnet18(weights=None), 7).eval()
    path = sandbox_tmp_path / "resnet18-local.pth"
    torch.save(reference_net.state_dict(), path)
    os.chmod(path, 0o644)
    model = student.models.ResNet18Classifier(10, str(path))
    keep(model.eval())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    reference_net.fc = nn.Identity()
    with torch.no_grad():
        expected = reference_net(x)
    got = model.forward_features(x)
    assert_close(got, expected, call=describe_call("ResNet18Classifier(10, weights_path).forward_features", x),
                 rtol=1e-4, atol=1e-4, hint="load every checkpoint key except fc.weight / fc.bias into the backbone")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.3.1")
def test_resnet18_freeze_backbone(student):
    """Q2.3(a) ResNet18Classifier(freeze_backbone=True) trains only the new head"""
    model = student.models.ResNet18Classifier(10, None, True)
    trainable = num_parameters(model, trainable_only=True)
    check(trainable == 5_130, f"with a frozen backbone only fc (512 * 10 + 10 = 5,130) should train, got {trainable:,}",
          hint="requires_grad_(False) on every backbone parameter")


@pytest.mark.weight(1.5)
@pytest.mark.number("2.4.5")
def test_vgg13_features_match_torchvision(student, tools):
    """Seed 004 VGG13: five blocks of 2 x (conv + ReLU) + max-pool, as torchvision's vgg13().features"""
    model = student.models.VGG13(10, 3, 32, 64)
    oracle = tools.seeded_(make_layers(cfgs["B"]), 5).eval()  # torchvision's vgg13().features
    tools.copy_weights_by_order(oracle, model.features, "model.features")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = oracle(x).flatten(1)
    got = model.forward_features(x)
    assert_close(got, expected, call=describe_call("VGG13(10, 3, 32, 64).forward_features", x), rtol=1e-4, atol=1e-5,
                 hint="3x3 convolutions with padding 1; widths 64, 128, 256, 512, 512; MaxPool2d(2, 2) per block")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.5")
def test_vgg13_classifier(student, tools, keep):
    """Seed 004 VGG13: three fully connected layers with ReLU and dropout; [N, num_classes] logits"""
    model = student.models.VGG13(10, 3, 32, 64)
    shapes = tools.parameter_shapes(model.classifier)
    assert_equal(shapes, [(64, 512), (64,), (64, 64), (64,), (10, 64), (10,)], what="classifier parameter shapes",
                 hint="Linear(512 * (input_size // 32) ** 2, hidden_dim), Linear(hidden_dim, hidden_dim), "
                      "Linear(hidden_dim, num_classes)")
    keep(model.eval())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    first, second = model(x), model(x)
    check(tuple(first.shape) == (2, 10), f"expected [2, 10] logits, got {list(first.shape)}")
    assert_close(second, first, what="two forward passes in eval mode", hint="dropout is off in eval mode")
    oracle = tools.seeded_(nn.Sequential(nn.Linear(512, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 64), nn.ReLU(),
                                         nn.Dropout(0.5), nn.Linear(64, 10)), 9).eval()
    tools.copy_weights_by_order(oracle, model.classifier, "model.classifier")
    with torch.no_grad():
        expected = oracle(model.forward_features(x))
    assert_close(model(x), expected, call=describe_call("VGG13(10, 3, 32, 64)", x), what="logits", rtol=1e-4,
                 atol=1e-5, hint="Linear -> ReLU -> Dropout -> Linear -> ReLU -> Dropout -> Linear on the flattened "
                                 "features; no activation after the last Linear")
