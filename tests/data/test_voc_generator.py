"""The synthetic VOC generator writes what VOC readers expect."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from PIL import Image

from grader.data.voc import VOC_CLASSES, class_style, make_voc


def test_layout_and_annotations(tmp_path):
    folder = make_voc(tmp_path / "VOC2007", {"train": 6, "val": 3, "test": 4}, seed=3, difficult_rate=0.5)
    assert set(folder.splits) == {"train", "val", "test", "trainval"}
    assert folder.splits["trainval"] == folder.splits["train"] + folder.splits["val"]
    for split, ids in folder.splits.items():
        assert (tmp_path / "VOC2007/ImageSets/Main" / f"{split}.txt").read_text().split() == ids
    for image_id, record in folder.images.items():
        image = Image.open(tmp_path / "VOC2007/JPEGImages" / f"{image_id}.jpg")
        assert image.size == (record.width, record.height) and image.mode == "RGB"
        root = ET.parse(tmp_path / "VOC2007/Annotations" / f"{image_id}.xml").getroot()
        assert int(root.find("size/width").text) == record.width
        objects = root.findall("object")
        assert len(objects) == len(record.objects)
        for node, obj in zip(objects, record.objects):
            assert node.find("name").text == obj.name
            assert int(node.find("difficult").text) == int(obj.difficult)
            box = tuple(int(node.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax"))
            assert box == obj.box
            assert 1 <= box[0] < box[2] <= record.width and 1 <= box[1] < box[3] <= record.height


def test_per_class_lists_follow_voc_difficult_rule(tmp_path):
    folder = make_voc(tmp_path, {"test": 12}, seed=5, difficult_rate=0.5, objects_per_image=(2, 4))
    for name in VOC_CLASSES:
        rows = dict(line.split() for line in (tmp_path / "ImageSets/Main" / f"{name}_test.txt").read_text().splitlines())
        for image_id, record in folder.images.items():
            present = [o for o in record.objects if o.name == name]
            expected = -1 if not present else (0 if all(o.difficult for o in present) else 1)
            assert int(rows[image_id]) == expected


def test_deterministic_and_classes_distinct(tmp_path):
    a = make_voc(tmp_path / "a", {"train": 3}, seed=1)
    b = make_voc(tmp_path / "b", {"train": 3}, seed=1)
    assert a.images == b.images
    assert (tmp_path / "a/JPEGImages/000001.jpg").read_bytes() == (tmp_path / "b/JPEGImages/000001.jpg").read_bytes()
    assert len({class_style(i) for i in range(20)}) == 20
