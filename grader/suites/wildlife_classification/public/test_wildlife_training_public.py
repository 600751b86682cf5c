"""Public tests of training and evaluation (Q2.2b, 2.3a/d): train_one_epoch, fit + logging, evaluate, features."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from grader.compare import assert_close, assert_equal, check


@pytest.mark.weight(0.75)
@pytest.mark.number("2.2.2")
def test_train_one_epoch_loss_and_accuracy(student, tools):
    """Q2.2(b) train_one_epoch: sample-averaged cross-entropy and accuracy; Adam steps lower the loss"""
    images, labels = tools.toy_data(22, 3, seed=1)
    local = tools.local_toy_model(3, seed=2)
    model = tools.remote_toy_model(student, local)
    loader = tools.remote_loader(student, images, labels, batch_size=8)  # batches of 8, 8, 6
    optim = student.import_library("torch.optim")
    frozen = optim.Adam(model.parameters(), lr=0.0)
    got = student.train.train_one_epoch(model, loader, frozen)
    check(isinstance(got, dict) and {"loss", "accuracy"} <= set(got), f"expected a dict with loss and accuracy, got {got}")
    with torch.no_grad():
        logits = local(images)
    expected = {"loss": float(F.cross_entropy(logits, labels)),
                "accuracy": float((logits.argmax(1) == labels).double().mean())}
    assert_close({"loss": got["loss"], "accuracy": got["accuracy"]}, expected, rtol=1e-5, atol=1e-6,
                 call="train_one_epoch(model, loader of 22 samples in batches of 8, Adam(lr=0))",
                 hint="average over samples: weight each batch's mean loss by its size (the last batch has 6)")
    adam = optim.Adam(model.parameters(), lr=0.05)
    losses = [student.train.train_one_epoch(model, loader, adam)["loss"] for _ in range(6)]
    check(losses[-1] < 0.7 * losses[0], f"six epochs of Adam(lr=0.05) on a separable toy set should lower the loss, "
                                        f"got {[round(v, 4) for v in losses]}",
          hint="zero_grad, forward, loss, backward, optimizer.step() for every batch")


@pytest.mark.weight(1)
@pytest.mark.number("2.2.3")
def test_fit_logs_to_tensorboard(student, sandbox_tmp_path, tools):
    """Q2.2(b) fit: Adam for N epochs; loss/accuracy curves and the confusion matrix logged to TensorBoard"""
    images, labels = tools.toy_data(24, 3, seed=3)
    model = tools.remote_toy_model(student, tools.local_toy_model(3, seed=4))
    loaders = {"train": tools.remote_loader(student, images, labels, 8),
               "val": tools.remote_loader(student, images[:12], labels[:12], 5)}
    log_dir = sandbox_tmp_path / "logs"
    history = student.train.fit(model, loaders, epochs=3, lr=0.05, log_dir=str(log_dir), num_classes=3,
                                class_names=["a", "b", "c"])
    keys = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    check(isinstance(history, dict) and sorted(history) == sorted(keys),
          f"fit should return a dict with keys {keys}, got {history if not isinstance(history, dict) else list(history)}")
    for key in keys:
        check(len(history[key]) == 3, f"history[{key!r}] should have one value per epoch (3), got {history[key]}")
    check(history["train_loss"][-1] < history["train_loss"][0], f"the train loss should drop, got {history['train_loss']}")
    scalars, image_tags = tools.read_scalars(log_dir)
    for tag, key in (("Loss/train", "train_loss"), ("Loss/val", "val_loss"), ("Accuracy/train", "train_accuracy"),
                     ("Accuracy/val", "val_accuracy")):
        check(tag in scalars, f"TensorBoard scalar {tag!r} was not logged; found {sorted(scalars)}")
        steps = [step for step, _ in scalars[tag]]
        assert_equal(steps, [1, 2, 3], what=f"steps of {tag}", hint="one point per epoch at steps 1..epochs")
        assert_close([value for _, value in scalars[tag]], history[key], rtol=1e-5, atol=1e-6,
                     what=f"values of {tag}", hint="log the same values fit returns")
    check("confusion_matrix" in image_tags, f"no 'confusion_matrix' figure in TensorBoard; image tags {image_tags}",
          hint="writer.add_figure('confusion_matrix', fig, epochs) after the last epoch")


@pytest.mark.weight(1)
@pytest.mark.number("2.3.2")
def test_evaluate(student, tools, keep):
    """Q2.3 evaluate: eval mode (no dropout), sample-averaged loss, accuracy, predictions in order"""
    images, labels = tools.toy_data(20, 3, seed=5)
    local = tools.local_toy_model(3, dropout=0.5, seed=6)
    model = tools.remote_toy_model(student, local)
    keep(model.train())
    got = student.train.evaluate(model, tools.remote_loader(student, images, labels, 6))
    local.eval()
    with torch.no_grad():
        logits = local(images)
    check(isinstance(got, dict) and {"loss", "accuracy", "preds", "targets"} <= set(got),
          f"expected a dict with loss, accuracy, preds and targets, got {got if not isinstance(got, dict) else list(got)}")
    assert_close(float(got["loss"]), float(F.cross_entropy(logits, labels)), rtol=1e-5, atol=1e-6, what="loss",
                 hint="model.eval() first (dropout off); average the loss over samples, not batches")
    assert_close(float(got["accuracy"]), float((logits.argmax(1) == labels).double().mean()), what="accuracy")
    assert_equal(got["preds"], logits.argmax(1), what="preds", hint="int64 arg-max of the logits, on the CPU")
    assert_equal(got["targets"], labels, what="targets")
    check(model.training is False, "evaluate must leave the model in eval mode (model.eval())")


@pytest.mark.weight(1)
@pytest.mark.number("2.3.3")
def test_extract_features(student, tools, keep):
    """Q2.3(d) extract_features: forward_features of every sample in eval mode, with the labels"""
    images, labels = tools.toy_data(17, 3, seed=7)
    local = tools.local_toy_model(5, dropout=0.5, seed=8)
    holder = tools.remote_feature_model(student, local)
    keep(holder.train())
    features, got_labels = student.train.extract_features(holder, tools.remote_loader(student, images, labels, 5))
    local.eval()
    with torch.no_grad():
        expected = local(images)
    assert_close(features, expected, rtol=1e-5, atol=1e-6, what="features",
                 hint="model.eval(), then model.forward_features(images) for every batch, concatenated in order")
    assert_equal(got_labels, labels, what="labels")
