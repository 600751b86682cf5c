"""Public tests of Task 0: VOCDataset with selective-search proposals (no reference needed).

The F22 starter's ``voc_dataset.py`` leaves one TODO: the proposals (``rois``); its labels,
weights, ground-truth boxes and image tensor are given code ("make sure you understand"), so
their tests are part ``extended``. The data set is built as the course builds it, from the folder
that holds ``data/VOCdevkit/VOC2007`` (``course.dataset``): a path hard-coded to the starter's
default finds the same files. ``rois`` may be a tensor, an array or a list (the starter says
neither).
"""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms as transforms
from PIL import Image

from grader.compare import assert_close, check, describe, describe_call


def expected_rois(data, split: str, index: int, top_n: int) -> torch.Tensor:
    """The ``top_n`` proposals by score, as [x_min, y_min, x_max, y_max] / (width, height) (the file is [y, x, y, x])."""
    record = data.voc.images[data.voc.splits[split][index]]
    proposals = data.proposals[split][index]
    order = torch.sort(torch.from_numpy(proposals.scores.reshape(-1)), descending=True, stable=True).indices[:top_n]
    yxyx = torch.from_numpy(proposals.boxes).to(torch.float64)[order]
    scale = torch.tensor([record.width, record.height, record.width, record.height], dtype=torch.float64)
    return yxyx[:, [1, 0, 3, 2]] / scale


@pytest.mark.weight(1)
@pytest.mark.number("0.1")
@pytest.mark.part("extended")
def test_labels_weights_and_ground_truth(student, wl_data, wl):
    """VOCDataset: labels, difficult weights, ground-truth boxes and classes"""
    data = wl_data({"trainval": 6}, seed=11, difficult_rate=0.4, objects_per_image=(1, 3))
    dataset = student.voc_dataset.VOCDataset(split="trainval", image_size=32, top_n=5, data_dir=str(data.data_dir))
    check(len(dataset) == 6, f"len(dataset) should be 6 (the images of trainval.txt), got {len(dataset)}")
    for index, image_id in enumerate(data.voc.splits["trainval"]):
        call = describe_call(f"VOCDataset('trainval', ...)[{index}]")
        item = dataset[index]
        record = data.voc.images[image_id]
        label, weight = torch.zeros(20), torch.ones(20)
        for obj in record.objects:
            label[wl.classes.index(obj.name)] = 1
        for cls in label.nonzero().flatten().tolist():
            if all(o.difficult for o in record.objects if wl.classes.index(o.name) == cls):
                weight[cls] = 0
        assert_close(item["label"], label, call=call, what="item['label']")
        assert_close(item["wgt"], weight, call=call, what="item['wgt']",
                     hint="weight 0 when every object of the class in the image is difficult, else 1")
        scale = torch.tensor([record.width, record.height, record.width, record.height], dtype=torch.float64)
        boxes = torch.tensor([o.box for o in record.objects], dtype=torch.float64) / scale
        got_boxes = wl.tensor(item["gt_boxes"], "item['gt_boxes']", call, torch.float64).reshape(-1, 4)
        assert_close(got_boxes, boxes, call=call, what="item['gt_boxes']", atol=1.01 / min(record.width, record.height),
                     hint="[xmin, ymin, xmax, ymax] of each object divided by the image width / height")
        got_classes = wl.tensor(item["gt_classes"], "item['gt_classes']", call, torch.int64).reshape(-1)
        assert_close(got_classes, torch.tensor([wl.classes.index(o.name) for o in record.objects]), call=call,
                     what="item['gt_classes']")


@pytest.mark.weight(4)
@pytest.mark.number("0.2")
@pytest.mark.parametrize("top_n", [4, 10])
def test_proposals_top_n_in_xy_order(student, wl_data, wl, course, top_n):
    """VOCDataset: rois are the top_n proposals by boxScores, [x1, y1, x2, y2] normalised"""
    # Wide and tall images, so that mixing up x and y (the file stores [y1, x1, y2, x2]) is visible.
    data = wl_data({"trainval": 5}, seed=12, size=(50, 140))
    dataset = course.dataset(data, "trainval", 32, top_n)
    for index, image_id in enumerate(data.voc.splits["trainval"]):
        record = data.voc.images[image_id]
        call = describe_call(f"VOCDataset('trainval', top_n={top_n})[{index}]['rois']") + \
            f" (image {record.width} wide, {record.height} high)"
        got = wl.tensor(dataset[index]["rois"], "rois", call, torch.float64)
        check(got.dim() == 2 and got.shape[-1] == 4, f"rois should be [K, 4], got shape {list(got.shape)}",
              call=call)
        # 1-based pixel indices: dividing them as they are, or after subtracting 1, are both fine.
        wl.same_box_sets(got.to(torch.float64), expected_rois(data, "trainval", index, top_n),
                         atol=1.01 / min(record.width, record.height), call=call, what="rois",
                         hint="keep the top_n proposals with the highest boxScores; the .mat file stores "
                              "[y_min, x_min, y_max, x_max] (row first): reorder to [x_min, y_min, x_max, y_max] "
                              "and divide x by the width, y by the height")


@pytest.mark.weight(1)
@pytest.mark.number("0.3")
@pytest.mark.part("extended")
def test_image_tensor(student, wl_data):
    """VOCDataset: image resized to image_size and normalised with the ImageNet mean/std"""
    data = wl_data({"test": 2}, seed=13)
    dataset = student.voc_dataset.VOCDataset(split="test", image_size=40, top_n=3, data_dir=str(data.data_dir))
    for index, image_id in enumerate(data.voc.splits["test"]):
        call = describe_call(f"VOCDataset('test', image_size=40)[{index}]['image']")
        image = dataset[index]["image"]
        check(isinstance(image, torch.Tensor) and tuple(image.shape) == (3, 40, 40) and image.dtype == torch.float32,
              f"expected a float32 tensor [3, 40, 40], got {describe(image)}", call=call)
        pil = Image.open(data.data_dir / "JPEGImages" / f"{image_id}.jpg").convert("RGB")
        expected = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(
            transforms.Resize((40, 40))(transforms.ToTensor()(pil)))
        error = float((image - expected).abs().mean())
        check(error < 0.05, f"mean absolute difference from the expected image is {error:.3f} (allowed 0.05)",
              call=call, hint="ToTensor, resize to (image_size, image_size), then Normalize with the ImageNet "
                              "mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225]")


@pytest.mark.weight(1)
@pytest.mark.number("0.4")
def test_dataloader_batch_of_one(student, wl_data, course):
    """VOCDataset in a DataLoader (batch_size=1) gives the handout's dict"""
    data = wl_data({"trainval": 3}, seed=14)
    dataset = course.dataset(data, "trainval", 48, 6)
    loader = student.import_library("torch.utils.data").DataLoader(dataset, batch_size=1, shuffle=False)
    call = "DataLoader(VOCDataset('trainval', image_size=48, top_n=6), batch_size=1)"
    count = 0
    for batch in loader:
        check(isinstance(batch, dict), f"a batch should be a dict, got {type(batch).__name__}", call=call)
        missing = {"image", "label", "wgt", "rois", "gt_boxes", "gt_classes"} - set(batch)
        check(not missing, f"the batch misses the keys {sorted(missing)}", call=call)
        check(tuple(batch["image"].shape) == (1, 3, 48, 48), f"image: expected [1, 3, 48, 48], got "
              f"{list(batch['image'].shape)}", call=call)
        check(tuple(batch["label"].shape) == (1, 20) and tuple(batch["wgt"].shape) == (1, 20),
              "label and wgt should be [1, 20] in a batch of one", call=call)
        check(tuple(batch["rois"].shape) == (1, 6, 4), f"rois: expected [1, 6, 4], got {list(batch['rois'].shape)}",
              call=call)
        count += 1
    check(count == 3, f"expected 3 batches, got {count}", call=call)
