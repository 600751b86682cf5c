"""The reference's full report (``train.py``) runs end to end on a tiny synthetic folder and writes everything.

One epoch of the CNN at 32 px: metrics, every PNG of the report, the centroid-distance
table, TensorBoard events and an offline wandb run (read back with the graded suite's readers).
"""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest
from PIL import Image

from grader.data.wildlife_classification import make_wildlife_folder
from grader.paths import reference_root, suites_root
from grader.sandbox.loader import load_modules

FIGURES = ("class_distribution.png", "curves.png", "confusion_matrix_test.png", "misclassified.png",
           "tsne_train_val_2d.png", "tsne_val_3d.png", "pca_val_2d.png")


@pytest.fixture(scope="module")
def suite_helpers():
    path = suites_root() / "wildlife_classification" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_wildlife_suite_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_writes_every_artefact(tmp_path, suite_helpers):
    train = load_modules(reference_root() / "wildlife_classification", ["train"])["train"]
    folder = make_wildlife_folder(tmp_path / "rw", 10, seed=8)
    out = tmp_path / "run"
    assert train.main(["--data-root", str(folder.root), "--model", "cnn", "--epochs", "1", "--image-size", "32",
                       "--batch-size", "16", "--wandb", "--tsne-samples", "80", "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert set(report) >= {"test_accuracy", "test_f1_macro", "test_f1_weighted", "confusion_matrix", "history"}
    assert 0 <= report["test_f1_macro"] <= 1 and len(report["history"]["train_loss"]) == 1
    assert sum(map(sum, report["confusion_matrix"])) == 20
    for name in FIGURES:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) >= 100, name
    with open(out / "centroid_distances.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["true_class"] != r["predicted_class"] for r in rows)
    assert all(float(r["distance_to_true_centroid"]) >= 0 for r in rows)
    scalars, images = suite_helpers.read_scalars(out / "logs")
    assert {"Loss/train", "Loss/val", "Accuracy/train", "Accuracy/val"} <= set(scalars)
    assert images == ["confusion_matrix"]
    rows = suite_helpers.read_wandb_history(out / "logs")
    assert any("train/loss" in row for row in rows)
    assert any(key.startswith("confusion_matrix") for row in rows for key in row)
