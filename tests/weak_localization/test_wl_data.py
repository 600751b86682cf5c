"""Synthetic selective-search files are in the real layout, and the reference VOCDataset reads them right."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.transforms as transforms
from PIL import Image

from grader.data.voc import VOC_CLASSES
from grader.data.weak_localization import (
    SHAPE_CLASSES,
    make_weak_localization_data,
    read_selective_search_mat,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("wl")
    return make_weak_localization_data(root, {"train": 5, "val": 3, "test": 4}, seed=7, difficult_rate=0.4,
                                       objects_per_image=(1, 3), size=(60, 110))


def test_mat_layout(data):
    for split in ("train", "val", "trainval", "test"):
        mat = scipy.io.loadmat(str(data.data_dir / "selective_search_data" / f"voc_2007_{split}.mat"))
        ids = (data.data_dir / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        assert mat["boxes"].shape == (1, len(ids)) and mat["boxes"].dtype == object
        assert mat["boxScores"].shape == (1, len(ids))
        assert [str(mat["images"][0][i][0]) for i in range(len(ids))] == ids
        for i, image_id in enumerate(ids):
            boxes, scores = mat["boxes"][0][i], mat["boxScores"][0][i]
            record = data.voc.images[image_id]
            assert boxes.ndim == 2 and boxes.shape[1] == 4 and np.issubdtype(boxes.dtype, np.integer)
            assert scores.shape == (boxes.shape[0], 1) and scores.dtype == np.float64
            assert len(set(scores.ravel().tolist())) == len(scores)  # no ties at top_n
            y1, x1, y2, x2 = boxes.T
            assert (y1 >= 1).all() and (x1 >= 1).all() and (y1 <= y2).all() and (x1 <= x2).all()
            assert (y2 <= record.height).all() and (x2 <= record.width).all()
            # every object's own box is among the proposals ([y1, x1, y2, x2], 1-based like the XML)
            rows = {tuple(r) for r in boxes.tolist()}
            for obj in record.objects:
                xmin, ymin, xmax, ymax = obj.box
                assert (ymin, xmin, ymax, xmax) in rows


def test_mat_round_trip_and_determinism(data, tmp_path):
    back = read_selective_search_mat(data.data_dir / "selective_search_data" / "voc_2007_test.mat")
    assert [p.image_id for p in back] == data.voc.splits["test"]
    for a, b in zip(back, data.proposals["test"]):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
    again = make_weak_localization_data(tmp_path, {"train": 5, "val": 3, "test": 4}, seed=7, difficult_rate=0.4,
                                        objects_per_image=(1, 3), size=(60, 110))
    for a, b in zip(again.proposals["trainval"], data.proposals["trainval"]):
        np.testing.assert_array_equal(a.boxes, b.boxes)


def test_reference_dataset_reads_proposals_labels_and_boxes(ref, data):
    dataset = ref.voc_dataset.VOCDataset("trainval", image_size=48, top_n=7, data_dir=str(data.data_dir))
    assert len(dataset) == 8
    for index, image_id in enumerate(data.voc.splits["trainval"]):
        item = dataset[index]
        record = data.voc.images[image_id]
        width, height = record.width, record.height
        proposals = data.proposals["trainval"][index]
        order = np.argsort(-proposals.scores.ravel())[:7]
        y1, x1, y2, x2 = proposals.boxes[order].T.astype(np.float64)
        expected = np.stack([x1 / width, y1 / height, x2 / width, y2 / height], 1)
        np.testing.assert_allclose(item["rois"].numpy(), expected, rtol=1e-6)
        assert item["rois"].dtype == torch.float32
        label = torch.zeros(20)
        weight = torch.ones(20)
        for cls in {VOC_CLASSES.index(o.name) for o in record.objects}:
            label[cls] = 1
            if all(o.difficult for o in record.objects if VOC_CLASSES.index(o.name) == cls):
                weight[cls] = 0
        assert torch.equal(item["label"], label) and torch.equal(item["wgt"], weight)
        boxes = torch.tensor([[o.box[0] / width, o.box[1] / height, o.box[2] / width, o.box[3] / height]
                              for o in record.objects])
        torch.testing.assert_close(item["gt_boxes"], boxes)
        assert item["gt_classes"].tolist() == [VOC_CLASSES.index(o.name) for o in record.objects]
        image = Image.open(data.data_dir / "JPEGImages" / f"{image_id}.jpg")
        expected_image = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(
            transforms.Resize((48, 48))(transforms.ToTensor()(image)))
        torch.testing.assert_close(item["image"], expected_image)
    assert ref.voc_dataset.VOCDataset("test", top_n=10_000, data_dir=str(data.data_dir))[0]["rois"].shape[0] == \
        data.proposals["test"][0].boxes.shape[0]


def test_shape_classes_are_one_colour_five_shapes():
    from grader.data.voc import class_style

    styles = [class_style(VOC_CLASSES.index(name)) for name in SHAPE_CLASSES]
    assert len({shape for shape, _ in styles}) == 5 and len({colour for _, colour in styles}) == 1
