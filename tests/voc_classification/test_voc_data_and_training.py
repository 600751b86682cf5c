"""Data formats (against torchvision's VOC reader), the training loop's TensorBoard output, the scripts."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import VOCDetection

from grader.data.voc import VOC_CLASSES, make_voc
from grader.data.voc_classification import (
    annotation_cases,
    label_vectors,
    make_learnable_voc,
    make_training_folder,
    read_tensorboard_events,
    write_voc_images,
)


def test_generated_folder_read_by_torchvision_matches_preload_anno(ref, tmp_path):
    """torchvision's VOCDetection (an independent XML reader) and preload_anno agree on every image."""
    voc = make_training_folder(tmp_path, trainval=12, test=25, seed=4)
    oracle = VOCDetection(str(tmp_path / "data"), year="2007", image_set="test", download=False)
    dataset = ref.voc_dataset.VOCDataset("test", 32, data_dir=str(voc))
    assert len(oracle) == len(dataset) == 25
    for index in range(len(dataset)):
        objects = oracle[index][1]["annotation"]["object"]
        labels, weights = torch.zeros(20), torch.ones(20)
        for name in {o["name"] for o in objects}:
            flags = [o["difficult"] == "1" for o in objects if o["name"] == name]
            labels[VOC_CLASSES.index(name)] = 1
            weights[VOC_CLASSES.index(name)] = 0.0 if all(flags) else 1.0
        got_labels, got_weights = dataset.anno_list[index]
        assert torch.equal(got_labels, labels) and torch.equal(got_weights, weights)
        assert got_labels.dtype == got_weights.dtype == torch.float32


def test_every_class_is_in_the_small_test_split(tmp_path):
    voc = make_training_folder(tmp_path, trainval=4, test=20, seed=9)
    oracle = VOCDetection(str(tmp_path / "data"), year="2007", image_set="test", download=False)
    seen = {o["name"] for i in range(len(oracle)) for o in oracle[i][1]["annotation"]["object"]
            if o["difficult"] == "0"}
    assert seen == set(VOC_CLASSES)
    assert not (voc / "ImageSets" / "Main" / "_rewritten.txt").exists()


def test_annotation_cases_both_readings(ref, tmp_path):
    images = annotation_cases()
    write_voc_images(tmp_path, images, "cases")
    dataset = ref.voc_dataset.VOCDataset("cases", 32, data_dir=str(tmp_path))
    labels = torch.stack([a[0] for a in dataset.anno_list])
    weights = torch.stack([a[1] for a in dataset.anno_list])
    all_labels, all_weights = label_vectors(images, "all")
    any_labels, any_weights = label_vectors(images, "any")
    assert torch.equal(labels, all_labels) and torch.equal(weights, all_weights)
    assert torch.equal(all_labels, any_labels)
    differ = (all_weights != any_weights).any(1).nonzero().flatten().tolist()
    assert differ == [4, 5, 8]  # the images where a class is both difficult and not


def test_unknown_class_is_reported(ref, tmp_path):
    images = annotation_cases()[:1]
    images[0].objects[0].name = "unicorn"
    write_voc_images(tmp_path, images, "bad")
    with pytest.raises(ValueError, match="'unicorn'"):
        ref.voc_dataset.VOCDataset("bad", 32, data_dir=str(tmp_path))


def test_augmentations_test_deterministic_train_random(ref, tmp_path):
    make_voc(tmp_path, {"train": 2, "val": 1, "test": 2}, seed=3)
    test = ref.voc_dataset.VOCDataset("test", 48, data_dir=str(tmp_path))
    assert torch.equal(test[0][0], test[0][0]) and test[0][0].shape == (3, 48, 48)
    train = ref.voc_dataset.VOCDataset("trainval", 48, data_dir=str(tmp_path))
    torch.manual_seed(0)
    reads = [train[0][0] for _ in range(5)]
    assert all(r.shape == (3, 48, 48) for r in reads)
    assert len({r.sum().item() for r in reads}) > 1


def test_learnable_voc_is_square_and_crowded(tmp_path):
    folder = make_learnable_voc(tmp_path, train=20, test=5, seed=1, side=48)
    assert all(i.width == i.height == 48 for i in folder.images.values())
    assert set(folder.splits) == {"trainval", "test"}


@pytest.fixture
def trained(ref, tmp_path, monkeypatch, flat_names):
    """One run of the reference trainer on a tiny folder at ``data/VOCdevkit/VOC2007`` (the starter's
    loaders read it relative to the working folder; events under ``runs/`` and the checkpoint there too)."""
    make_training_folder(tmp_path, trainval=16, test=20)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = ref.simple_cnn.SimpleCNN(num_classes=20, inp_size=32, c_dim=3)
    args = ref.utils.ARGS(epochs=3, batch_size=8, test_batch_size=20, inp_size=32, log_every=1, val_every=3,
                          lr=1e-3, step_size=1, gamma=0.5, save_at_end=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    with flat_names():  # utils.get_data_loader imports voc_dataset by its flat name
        ap, mean_ap = ref.trainer.train(args, model, optimizer, scheduler, "simple")
    return tmp_path, model, ap, mean_ap


def test_trainer_writes_the_tensorboard_tags(trained, flat_names):
    folder, model, ap, mean_ap = trained
    events = read_tensorboard_events(folder / "runs")
    scalars, histograms = events["scalars"], events["histograms"]
    assert [s for s, _ in scalars["Loss/train"]] == list(range(6))
    assert [s for s, _ in scalars["map"]] == [0, 3]
    np.testing.assert_allclose([v for _, v in scalars["learning_rate"]], [5e-4, 2.5e-4, 1.25e-4], rtol=1e-6)
    assert set(histograms) == {f"{n}/grad" for n, _ in model.named_parameters()}
    assert all(count == 6 for count in histograms.values())
    # The starter's "do not modify" eval_dataset_map: one AP per class of the one test batch.
    assert ap.shape == (20,) and np.isfinite(ap).all() and mean_ap == pytest.approx(ap.mean())
    with flat_names():  # the whole model, pickled with its class simple_cnn.SimpleCNN
        saved = torch.load(folder / "checkpoint-simple-epoch3.pth", weights_only=False)
    assert isinstance(saved, torch.nn.Module) and set(saved.state_dict()) == set(model.state_dict())


def test_train_q1_script(ref, tmp_path, monkeypatch, flat_names, capsys):
    """``python train_q1.py`` from the folder that holds data/VOCdevkit (the reference's hyper-parameters)."""
    make_training_folder(tmp_path, trainval=8, test=20)
    monkeypatch.chdir(tmp_path)
    with flat_names():
        runpy.run_path(str(Path(ref.train_q1.__file__)), run_name="__main__")
    out = capsys.readouterr().out
    assert "test map:" in out and "args.inp_size = 64" in out
    assert "map" in read_tensorboard_events(tmp_path / "runs")["scalars"]


def test_analysis_script(ref, tmp_path, flat_names):
    voc = make_training_folder(tmp_path, trainval=4, test=20)
    with flat_names():
        ref.analysis.main(["--model", "simple", "--data-dir", str(voc), "--inp-size", "32", "--count", "20",
                           "--out", str(tmp_path / "plots")])
    assert (tmp_path / "plots" / "tsne.png").is_file() and (tmp_path / "plots" / "conv1_filters.png").is_file()


def test_digits_are_mnist_shaped(ref):
    train_x, train_y, test_x, test_y = ref.q0_hello_mnist.load_digits_28()
    assert train_x.shape[1:] == (1, 28, 28) and len(train_x) + len(test_x) == 1797
    assert set(test_y.tolist()) == set(range(10))
