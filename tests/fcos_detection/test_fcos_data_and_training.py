"""The course helper (VOC readers, training loop, inference, mAP) and train.py on synthetic VOC data."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from PIL import Image

from grader.data.fcos_detection import continuous_box, make_detection_voc, write_json_layout
from grader.data.voc import VOCFolder, VOCImage, VOCObject, annotation_xml


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> VOCFolder:
    root = tmp_path_factory.mktemp("fcosvoc") / "VOC2007"
    return make_detection_voc(root, {"train": 6, "val": 4}, seed=3, difficult_rate=0.3)


def test_generator_writes_both_layouts(synthetic):
    root = Path(synthetic.root)
    train = json.loads((root / "voc07_train.json").read_text())
    assert [entry[0] for entry in train] == [f"JPEGImages/{i}.jpg" for i in synthetic.splits["train"]]
    for (_path, objects), image_id in zip(train, synthetic.splits["train"]):
        record = synthetic.images[image_id]
        expected = [{"xyxy": continuous_box(o.box), "name": o.name} for o in record.objects if not o.difficult]
        assert objects == expected
        tree = ET.parse(root / "Annotations" / f"{image_id}.xml").getroot()
        assert len(tree.findall("object")) == len(record.objects)


def test_generator_is_deterministic(tmp_path):
    a = make_detection_voc(tmp_path / "a", {"train": 3, "val": 1}, seed=9)
    b = make_detection_voc(tmp_path / "b", {"train": 3, "val": 1}, seed=9)
    assert a.images == b.images
    assert (tmp_path / "a/voc07_train.json").read_text() == (tmp_path / "b/voc07_train.json").read_text()


def test_json_and_xml_layouts_give_the_same_items(ref, synthetic, tmp_path):
    helper = ref.detection_helper
    from_json = helper.VOC2007DetectionTiny(str(synthetic.root), "train", image_size=96)
    xml_only = tmp_path / "xml"
    xml_only.mkdir()
    for sub in ("JPEGImages", "Annotations", "ImageSets"):
        (xml_only / sub).symlink_to(Path(synthetic.root) / sub)
    from_xml = helper.VOC2007DetectionTiny(str(xml_only), "train", image_size=96)
    assert len(from_json) == len(from_xml) == 6
    for index in range(6):
        path_a, image_a, boxes_a = from_json[index]
        path_b, image_b, boxes_b = from_xml[index]
        assert Path(path_a).name == Path(path_b).name
        assert image_a.shape == (3, 96, 96) and image_a.dtype == torch.float32
        torch.testing.assert_close(image_a, image_b)
        torch.testing.assert_close(boxes_a, boxes_b)
        assert boxes_a.shape == (40, 5)
        valid = boxes_a[:, 4] >= 0
        assert bool((boxes_a[~valid] == -1).all())
        assert bool((boxes_a[valid, 2] > boxes_a[valid, 0]).all() and (boxes_a[valid, 3] > boxes_a[valid, 1]).all())


def test_voc_layout_under_vocdevkit_and_difficult_flags(ref, synthetic, tmp_path):
    helper = ref.detection_helper
    devkit = tmp_path / "data" / "VOCdevkit"
    devkit.mkdir(parents=True)
    (devkit / "VOC2007").symlink_to(Path(synthetic.root))
    # No JSON for "val" under data/: the VOC2007 folder is found one level down.
    dataset = helper.VOC2007DetectionTiny(str(tmp_path / "data"), "val", image_size=64, keep_difficult=True)
    dropped = helper.VOC2007DetectionTiny(str(tmp_path / "data"), "val", image_size=64, keep_difficult=False)
    for index, image_id in enumerate(synthetic.splits["val"]):
        objects = synthetic.images[image_id].objects
        flags = dataset.difficult_flags(index)
        assert flags[: len(objects)].tolist() == [o.difficult for o in objects]
        assert not bool(flags[len(objects):].any())
        _, _, kept = dropped[index]
        assert int((kept[:, 4] >= 0).sum()) <= sum(not o.difficult for o in objects)


def test_boxes_follow_resize_and_centre_crop(ref, tmp_path):
    """A white rectangle drawn in a 200 x 120 image ends up inside the transformed box."""
    helper = ref.detection_helper
    root = tmp_path / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    image = Image.new("RGB", (200, 120), (0, 0, 0))
    x1, y1, x2, y2 = 70, 20, 150, 90  # continuous pixel edges
    image.paste((255, 255, 255), (x1, y1, x2, y2))
    image.save(root / "JPEGImages" / "000001.png")
    record = VOCImage("000001", 200, 120, [VOCObject("dog", (x1 + 1, y1 + 1, x2, y2))])
    (root / "Annotations" / "000001.xml").write_text(annotation_xml(record).replace("000001.jpg", "000001.png"))
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n")
    dataset = helper.VOC2007DetectionTiny(str(root), "train", image_size=60)
    _, tensor, boxes = dataset[0]
    pixels = helper.inverse_normalize(tensor).mean(0)
    ys, xs = torch.nonzero(pixels > 0.5, as_tuple=True)
    drawn = [float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1]
    assert boxes[0, :4].tolist() == pytest.approx(drawn, abs=1.0)
    assert boxes[0, 4] == helper.VOC_CLASSES.index("dog")


def test_reader_errors_quote_the_problem(ref, tmp_path):
    helper = ref.detection_helper
    with pytest.raises(FileNotFoundError, match="voc07_train.json"):
        helper.VOC2007DetectionTiny(str(tmp_path), "train")
    (tmp_path / "voc07_train.json").write_text(json.dumps([["a.jpg", [{"xyxy": [0, 0, 1, 1], "name": "unicorn"}]]]))
    with pytest.raises(ValueError, match="unicorn"):
        helper.VOC2007DetectionTiny(str(tmp_path), "train")
    many = [{"xyxy": [0, 0, 1, 1], "name": "dog"}] * 41
    (tmp_path / "voc07_train.json").write_text(json.dumps([["a.jpg", many]]))
    with pytest.raises(ValueError, match="41 objects"):
        helper.VOC2007DetectionTiny(str(tmp_path), "train")


@pytest.mark.parametrize(("argv", "overfit"), [
    ([], True), (["--overfit"], True), (["--overfit=False"], False), (["--overfit", "false"], False),
    (["--no-overfit"], False), (["--overfit=true"], True), (["--overfit=0"], False),
])
def test_train_flags_are_real_booleans(ref, argv, overfit):
    args = ref.train.parse_args(argv)
    assert args.overfit is overfit
    assert args.visualize_gt is False and args.test_inference is False and args.inference is False
    assert ref.train.parse_args(["--test_inference", "--visualize_gt=yes"]).test_inference is True
    with pytest.raises(SystemExit):
        ref.train.parse_args(["--overfit=maybe"])


def _event_tags(log_dir: Path) -> set:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for event_file in log_dir.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(event_file))
        accumulator.Reload()
        for values in accumulator.Tags().values():
            if isinstance(values, list):
                tags.update(values)
    return tags


def test_train_script_end_to_end(ref, synthetic, tmp_path):
    """Overfit a couple of iterations, then mAP, plots, checkpoint and TensorBoard logs; also --visualize_gt."""
    train = ref.train
    log_dir = tmp_path / "logs"
    common = ["--data_dir", str(synthetic.root), "--image_size", "64", "--batch_size", "2", "--subset_size", "4",
              "--fpn_channels", "8", "--stem_channels", "8", "--log_dir", str(log_dir), "--no-progress",
              "--checkpoint", str(tmp_path / "fcos.pt")]
    summary = train.main(train.parse_args(common + ["--overfit", "--max_iters", "3", "--log_period", "1",
                                                    "--inference"]))
    assert [h["iter"] for h in summary["history"]] == [0, 1, 2]
    assert all(math.isfinite(h["total"]) for h in summary["history"])
    assert 0.0 <= summary["map"] <= 1.0 and len(summary["ap"]) == 20
    for name in ("loss.png", "mAP.png", "mAP.json"):
        assert (log_dir / name).is_file(), name
    state = torch.load(tmp_path / "fcos.pt", weights_only=True)
    assert any(k.startswith("pred_net.pred_cls") for k in state)
    tags = _event_tags(log_dir)
    assert {"train/loss_cls", "train/loss_box", "train/loss_ctr", "train/total_loss", "train/lr"} <= tags
    train.main(train.parse_args(common + ["--visualize_gt"]))
    assert "train/gt_images" in _event_tags(log_dir)


def test_inference_writes_cartucho_files(ref, synthetic, tmp_path):
    helper, osd = ref.detection_helper, ref.one_stage_detector
    torch.manual_seed(0)
    detector = osd.FCOS(20, 8, [8])
    dataset = helper.VOC2007DetectionTiny(str(synthetic.root), "val", image_size=64, keep_difficult=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=1)
    results = helper.inference_with_detector(detector, loader, dataset.idx_to_class, score_thresh=0.0,
                                             nms_thresh=0.5, output_dir=str(tmp_path / "input"), progress=False,
                                             log_dir=None)
    assert len(results) == len(dataset)
    names = sorted(p.name for p in (tmp_path / "input" / "detection-results").iterdir())
    assert names == sorted(f"{i}.txt" for i in synthetic.splits["val"])
    line = (tmp_path / "input" / "detection-results" / names[0]).read_text().splitlines()[0].split()
    assert line[0] in helper.VOC_CLASSES and len(line) == 6 and 0.0 <= float(line[1]) <= 1.0
    gt_lines = (tmp_path / "input" / "ground-truth" / names[0]).read_text().splitlines()
    assert all(len(g.split()) == 5 for g in gt_lines)
    ap, mean_ap = helper.evaluate_detector(detector, dataset, 20, progress=False)
    assert ap.shape == (20,) and (math.isnan(mean_ap) or 0.0 <= mean_ap <= 1.0)
    # Without output_dir: example detections go to TensorBoard.
    helper.inference_with_detector(detector, loader, dataset.idx_to_class, score_thresh=0.0, nms_thresh=0.5,
                                   log_dir=str(tmp_path / "tb"), progress=False, max_logged=2)
    assert "test/detections" in _event_tags(tmp_path / "tb")


def test_json_layout_skips_difficult(tmp_path):
    record = VOCImage("000001", 50, 40, [VOCObject("cat", (1, 1, 10, 10)), VOCObject("dog", (5, 5, 20, 20), True)])
    folder = VOCFolder(tmp_path, {"train": ["000001"]}, {"000001": record}, ("cat", "dog"))
    write_json_layout(folder)
    data = json.loads((tmp_path / "voc07_train.json").read_text())
    assert data == [["JPEGImages/000001.jpg", [{"xyxy": [0.0, 0.0, 10.0, 10.0], "name": "cat"}]]]
