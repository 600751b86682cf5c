"""Q1 hidden tests: harder annotation folders, loss gradients, no built-in loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.compare import assert_close, check, describe_call
from grader.data.voc import make_voc
from grader.student import value_and_grad


@pytest.mark.weight(1)
@pytest.mark.number("1.3")
def test_preload_anno_many_difficult_objects(student, sandbox_tmp_path, check_annotations):
    """preload_anno: crowded images with many difficult objects"""
    root = sandbox_tmp_path / "VOC2007"
    folder = make_voc(root, {"test": 40}, seed=21, difficult_rate=0.5, objects_per_image=(2, 6))
    dataset = student.voc_dataset.VOCDataset("test", 32, data_dir=str(root))
    images = [folder.images[i] for i in folder.splits["test"]]
    check_annotations(dataset.preload_anno(), images,
                      describe_call("VOCDataset('test', 32, data_dir=...).preload_anno"))


gradient_cases = st.integers(1, 5).flatmap(lambda n: st.integers(1, 20).flatmap(lambda c: st.tuples(
    st.lists(st.one_of(st.floats(-1e4, 1e4, width=32), st.floats(-20, 20, width=32)).filter(lambda v: v != 0),
             min_size=n * c, max_size=n * c),
    st.lists(st.sampled_from([0.0, 1.0]), min_size=n * c, max_size=n * c),
    st.just((n, c)))))


@pytest.mark.weight(1)
@pytest.mark.number("1.11")
@settings(max_examples=20)
@given(gradient_cases)
def test_loss_gradient_matches_oracle(student, case):
    """multilabel_loss gradient equals the float64 oracle's (random logits up to +-1e4)"""
    logits, labels, shape = case
    output = torch.tensor(logits, dtype=torch.float32).reshape(shape)
    target = torch.tensor(labels).reshape(shape)
    weight = torch.ones(shape)
    call = describe_call("multilabel_loss", output, target, weight) + " backward"
    _, (grad,) = value_and_grad(student.trainer.multilabel_loss, output, target, weight, wrt=(0,))
    check(grad is not None, "the loss has no gradient with respect to the logits", call=call)
    reference = output.double().requires_grad_(True)
    F.binary_cross_entropy_with_logits(reference, target.double()).backward()
    assert_close(grad, reference.grad.float(), call=call, rtol=1e-4, atol=1e-7, what="d loss / d output",
                 hint="the gradient of the mean BCE is (sigmoid(x) - y) / (N * C); check for overflow")


@pytest.mark.weight(1)
@pytest.mark.number("1.12")
def test_loss_without_builtin_loss_functions(student):
    """multilabel_loss is written by hand (torch's BCE functions are not used)"""
    functional = student.import_library("torch.nn.functional")
    torch_module = student.import_library("torch")
    g = torch.Generator().manual_seed(5)
    output, target = torch.randn(4, 20, generator=g), (torch.rand(4, 20, generator=g) < 0.3).float()
    weight = torch.ones(4, 20)
    expected = F.binary_cross_entropy_with_logits(output.double(), target.double())
    banned = [(functional, "binary_cross_entropy_with_logits"), (functional, "binary_cross_entropy"),
              (torch_module, "binary_cross_entropy_with_logits")]
    saved = [(module, name, getattr(module, name)) for module, name in banned]
    try:
        for module, name, _ in saved:
            setattr(module, name, None)
        got = student.trainer.multilabel_loss(output, target, weight)
    except Exception as exc:  # noqa: BLE001 - calling a removed function fails with a TypeError
        raise AssertionError(f"multilabel_loss failed once torch's binary cross-entropy functions were removed "
                             f"({exc}); the handout asks for the loss without torch's built-in losses") from None
    finally:
        for module, name, value in saved:
            setattr(module, name, value)
    assert_close(got, expected.float(), call=describe_call("multilabel_loss", output, target, weight), rtol=1e-4,
                 atol=1e-6, check_dtype=False, what="loss")
