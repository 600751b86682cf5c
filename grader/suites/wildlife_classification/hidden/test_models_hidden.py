"""Hidden tests of the models: other sizes and channels, errors, batch norm, against the reference."""

from __future__ import annotations

import os

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from grader.compare import assert_close, check, describe_call
from grader.student import num_parameters, student_raises


@pytest.mark.weight(1)
@pytest.mark.number("2.2.1")
def test_cnn_other_sizes_against_reference(student, reference, tools):
    """Q2.2(a) WildlifeCNN with 1 channel, 48-px inputs and 7 classes equals the reference; input_size < 16 fails"""
    model = student.models.WildlifeCNN(7, 1, 48)
    expected_model = tools.seeded_(reference.models.WildlifeCNN(7, 1, 48), 3).eval()
    tools.copy_weights_by_order(expected_model.features, model.features, "WildlifeCNN(7, 1, 48).features")
    tools.copy_weights_by_order(expected_model.classifier, model.classifier, "WildlifeCNN(7, 1, 48).classifier")
    x = torch.randn(4, 1, 48, 48, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = expected_model(x)
    assert_close(model(x), expected, call=describe_call("WildlifeCNN(7, 1, 48)", x), rtol=1e-4, atol=1e-5)
    with student_raises("ValueError", match="8"):
        student.models.WildlifeCNN(10, 3, 8)


@pytest.mark.weight(0.5)
@pytest.mark.number("2.3.1")
def test_resnet18_errors_and_classes(student, sandbox_tmp_path):
    """Q2.3(a) ResNet18Classifier: missing checkpoint file is a FileNotFoundError; num_classes sets the head"""
    missing = sandbox_tmp_path / "no-such-checkpoint.pth"
    with student_raises("FileNotFoundError", match=os.path.basename(missing)):
        student.models.ResNet18Classifier(10, str(missing))
    model = student.models.ResNet18Classifier(5)
    check(num_parameters(model, trainable_only=True) == 11_176_512 + 2_565,
          "ResNet18Classifier(5) should have 11,179,077 trainable parameters (nothing frozen by default)")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.5")
def test_vgg13_batch_norm_matches_torchvision(student, tools, keep):
    """Seed 004 VGG13(batch_norm=True): features equal torchvision's vgg13_bn().features in eval mode"""
    model = student.models.VGG13(10, 3, 32, 32, 0.5, True)
    oracle = tools.seeded_(make_layers(cfgs["B"], batch_norm=True), 9).eval()  # torchvision's vgg13_bn().features
    tools.copy_weights_by_order(oracle, model.features, "VGG13(batch_norm=True).features")
    keep(model.eval())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        expected = oracle(x).flatten(1)
    assert_close(model.forward_features(x), expected, call=describe_call("VGG13(batch_norm=True).forward_features", x),
                 rtol=1e-4, atol=1e-4, hint="Conv2d -> BatchNorm2d -> ReLU")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.5")
def test_vgg13_other_sizes(student, tools, keep):
    """Seed 004 VGG13: 64-px grey inputs give 2048 flattened features and the right head; input_size < 32 fails"""
    model = student.models.VGG13(4, 1, 64, 16)
    shapes = tools.parameter_shapes(model.classifier)
    check(shapes == [(16, 2048), (16,), (16, 16), (16,), (4, 16), (4,)],
          f"VGG13(4, 1, 64, 16).classifier should have parameter shapes [(16, 2048), (16,), (16, 16), (16,), (4, 16), "
          f"(4,)], got {shapes}", hint="512 * (64 // 32) ** 2 = 2048 inputs to the first Linear")
    check(tools.parameter_shapes(model.features)[0] == (64, 1, 3, 3),
          "the first convolution of VGG13(in_channels=1) should have weight shape (64, 1, 3, 3)")
    keep(model.eval())
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(12))
    features, logits = model.forward_features(x), model(x)
    check(tuple(features.shape) == (2, 2048) and tuple(logits.shape) == (2, 4),
          f"expected [2, 2048] features and [2, 4] logits, got {list(features.shape)} and {list(logits.shape)}")
    with student_raises("ValueError"):
        student.models.VGG13(10, 3, 16)
