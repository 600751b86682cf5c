"""Hidden tests of training: identical to the reference step for step, mixup, offline wandb logging, evaluate."""

from __future__ import annotations

import json

import pytest
import torch

from grader.compare import assert_close, assert_equal, check


@pytest.mark.weight(0.5)
@pytest.mark.number("2.2.2")
def test_train_one_epoch_matches_reference(student, reference, tools):
    """Q2.2(b) train_one_epoch: same weights and loss as the reference after two epochs; mixup is applied"""
    images, labels = tools.toy_data(21, 3, seed=11)
    local = tools.local_toy_model(3, seed=12)
    model = tools.remote_toy_model(student, local)
    optimizer = student.import_library("torch.optim").Adam(model.parameters(), lr=0.02)
    loader = tools.remote_loader(student, images, labels, 4)
    local_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=4)
    local_optimizer = torch.optim.Adam(local.parameters(), lr=0.02)
    for epoch in range(2):
        got = student.train.train_one_epoch(model, loader, optimizer)
        expected = reference.train.train_one_epoch(local, local_loader, local_optimizer)
        assert_close({"loss": got["loss"], "accuracy": got["accuracy"]}, expected, rtol=1e-5, atol=1e-6,
                     call=f"train_one_epoch, epoch {epoch + 1}")
    assert_close(model.state_dict(), local.state_dict(), rtol=1e-4, atol=1e-6, what="weights after two epochs",
                 hint="one optimizer step per batch on nn.CrossEntropyLoss (mean over the batch)")
    frozen = student.import_library("torch.optim").Adam(model.parameters(), lr=0.0)
    plain = student.train.train_one_epoch(model, loader, frozen)
    mixed = student.train.train_one_epoch(model, loader, frozen, mixup_alpha=0.4, num_classes=3)
    check(mixed["loss"] == mixed["loss"] and abs(mixed["loss"] - plain["loss"]) > 1e-4,
          f"with mixup_alpha=0.4 the loss should be measured on mixed batches (soft targets), got {mixed['loss']} "
          f"against {plain['loss']} without mixup")


@pytest.mark.weight(0.25)
@pytest.mark.number("2.2.2")
def test_train_one_epoch_sets_train_mode(student, reference, tools, keep):
    """Q2.2(b) train_one_epoch puts the model in training mode: a BatchNorm model left in eval mode trains on batch statistics"""
    images, labels = tools.toy_data(22, 3, seed=17)
    local = tools.seeded_(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.BatchNorm1d(48), torch.nn.Linear(48, 3)), 18)
    nn = student.import_library("torch.nn")
    model = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(48), nn.Linear(48, 3))
    model.load_state_dict({k: v.detach().clone() for k, v in local.state_dict().items()})
    keep(model.eval())  # as evaluate() leaves it after an epoch of fit
    local.eval()
    frozen = student.import_library("torch.optim").Adam(model.parameters(), lr=0.0)
    got = student.train.train_one_epoch(model, tools.remote_loader(student, images, labels, 8), frozen)
    expected = reference.train.train_one_epoch(
        local, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=8),
        torch.optim.Adam(local.parameters(), lr=0.0))
    check(model.training is True, "train_one_epoch must put the model in training mode (model.train())")
    assert_close({"loss": got["loss"], "accuracy": got["accuracy"]}, expected, rtol=1e-5, atol=1e-6,
                 call="train_one_epoch(BatchNorm model in eval mode, 22 samples in batches of 8, Adam(lr=0))",
                 hint="call model.train() first: fit() runs evaluate() (model.eval()) after every epoch")
    assert_close(model.state_dict(), local.state_dict(), rtol=1e-5, atol=1e-6, what="BatchNorm running statistics",
                 hint="in training mode BatchNorm updates its running mean and variance")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.2.3")
def test_fit_logs_offline_wandb(student, reference, sandbox_tmp_path, tools):
    """Q2.2(b) fit(use_wandb=True): Adam (with weight_decay) as the reference does; an offline wandb run with losses, accuracies, confusion matrix"""
    images, labels = tools.toy_data(18, 3, seed=13)
    local = tools.local_toy_model(3, seed=14)
    model = tools.remote_toy_model(student, local)
    loaders = {"train": tools.remote_loader(student, images, labels, 6),
               "val": tools.remote_loader(student, images, labels, 9)}
    log_dir = sandbox_tmp_path / "wandb_logs"
    history = student.train.fit(model, loaders, epochs=2, lr=0.05, log_dir=str(log_dir), use_wandb=True,
                                run_name="toy", num_classes=3, class_names=["a", "b", "c"], weight_decay=0.2)
    data = torch.utils.data
    local_loaders = {"train": data.DataLoader(data.TensorDataset(images, labels), batch_size=6),
                     "val": data.DataLoader(data.TensorDataset(images, labels), batch_size=9)}
    expected = reference.train.fit(local, local_loaders, epochs=2, lr=0.05, num_classes=3, weight_decay=0.2)
    assert_close(history, expected, rtol=1e-4, atol=1e-6, what="history",
                 hint="torch.optim.Adam(lr=lr, weight_decay=weight_decay) over the trainable parameters; "
                      "train_one_epoch then evaluate per epoch")
    assert_close(model.state_dict(), local.state_dict(), rtol=1e-4, atol=1e-6, what="weights after fit")
    rows = tools.read_wandb_history(log_dir)
    logged: dict[str, list[float]] = {}
    has_matrix = False
    for row in rows:
        for key in ("train/loss", "val/loss", "train/accuracy", "val/accuracy"):
            if key in row:
                logged.setdefault(key, []).append(float(json.loads(row[key])))
        has_matrix |= any(key.startswith("confusion_matrix") for key in row)
    for key, name in (("train/loss", "train_loss"), ("val/loss", "val_loss"), ("train/accuracy", "train_accuracy"),
                      ("val/accuracy", "val_accuracy")):
        check(key in logged, f"wandb key {key!r} was never logged; logged keys: {sorted(logged)}")
        assert_close(logged[key], history[name], rtol=1e-5, atol=1e-6, what=f"wandb {key}")
    check(has_matrix, "the confusion matrix was not logged to wandb",
          hint="run.log({'confusion_matrix': wandb.plot.confusion_matrix(...)})")


@pytest.mark.weight(1)
@pytest.mark.number("2.3.2")
def test_evaluate_matches_reference(student, reference, tools):
    """Q2.3 evaluate: same loss, accuracy and predictions as the reference, uneven last batch"""
    images, labels = tools.toy_data(23, 4, seed=15)
    local = tools.local_toy_model(4, dropout=0.3, seed=16)
    model = tools.remote_toy_model(student, local)
    got = student.train.evaluate(model, tools.remote_loader(student, images, labels, 5))
    expected = reference.train.evaluate(local, torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels), batch_size=5))
    assert_close(float(got["loss"]), expected["loss"], rtol=1e-5, atol=1e-6, what="loss")
    assert_close(float(got["accuracy"]), expected["accuracy"], what="accuracy")
    assert_equal(got["preds"], expected["preds"], what="preds")
    assert_equal(got["targets"], expected["targets"], what="targets")
