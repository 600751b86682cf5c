"""Hidden tests of weak_localization: random inputs and whole-pipeline checks against the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from grader.compare import GradingFailure, assert_close, check, describe, describe_call
from grader.student import module_info

# -- Task 0 -------------------------------------------------------------------------------------------

@pytest.mark.weight(2)
@pytest.mark.number("0.5")
@pytest.mark.parametrize(("split", "top_n"), [("test", 1), ("test", 7), ("trainval", 1000)])
def test_proposals_other_splits_and_top_n(student, reference, wl_data, wl, course, split, top_n):
    """VOCDataset rois on other splits, top_n = 1 and top_n above the number of proposals"""
    data = wl_data({"trainval": 4, "test": 4}, seed=31, size=(40, 150), objects_per_image=(1, 2))
    expected_set = reference.voc_dataset.VOCDataset(split, image_size=24, top_n=top_n, data_dir=str(data.data_dir))
    dataset = course.dataset(data, split, 24, top_n)
    for index, image_id in enumerate(data.voc.splits[split]):
        record = data.voc.images[image_id]
        call = describe_call(f"VOCDataset({split!r}, top_n={top_n})[{index}]['rois']")
        got = wl.tensor(dataset[index]["rois"], "rois", call, torch.float64).reshape(-1, 4)
        wl.same_box_sets(got, expected_set[index]["rois"].to(torch.float64), atol=1.01 / min(record.width, record.height),
                         call=call, what="rois", hint="the top_n proposals by boxScores (all of them when there are "
                                                      "fewer), [x_min, y_min, x_max, y_max] normalised")


# -- Task 1 -------------------------------------------------------------------------------------------

@st.composite
def multilabel(draw):
    images = draw(st.integers(1, 20))
    classes = draw(st.integers(1, 20))
    ties = draw(st.booleans())
    seed = draw(st.integers(0, 2**31))
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(images, classes, generator=generator)
    if ties:
        scores = (scores * 4).round() / 4
    labels = (torch.rand(images, classes, generator=generator) < draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))).float()
    return scores, labels


@pytest.mark.weight(1)
@pytest.mark.number("1.13")
@pytest.mark.part("extended")
@given(multilabel())
def test_metric1_random(student, reference, data):
    """metric1 on random scores with ties and classes without positives"""
    scores, labels = data
    assert_close(student.task_1.metric1(scores, labels), reference.task_1.metric1(scores, labels),
                 call=describe_call("metric1", scores, labels), rtol=1e-6, atol=1e-6)


@pytest.mark.weight(1)
@pytest.mark.number("1.14")
@pytest.mark.part("extended")
@given(multilabel())
def test_metric2_random(student, reference, data):
    """metric2 on random scores, including scores of exactly 0.5"""
    scores, labels = data
    assert_close(student.task_1.metric2(scores, labels), reference.task_1.metric2(scores, labels),
                 call=describe_call("metric2", scores, labels), rtol=1e-6, atol=1e-6)


@st.composite
def course_multilabel(draw):
    """20 classes, continuous scores, every image with a positive (as VOC images are)."""
    images = draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**31))
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.rand(images, 20, generator=generator) < draw(st.sampled_from([0.05, 0.2, 0.5]))).float()
    labels[torch.arange(images), torch.randint(0, 20, (images,), generator=generator)] = 1
    return torch.randn(images, 20, generator=generator) * 2 + labels, labels


@pytest.mark.weight(2)
@pytest.mark.number("1.22")
@settings(max_examples=30)
@given(course_multilabel())
def test_metric1_random_course(student, wl, data):
    """metric1 on random 20-class scores (vs scikit-learn, classes without a positive left out)"""
    from sklearn.metrics import average_precision_score

    scores, labels = data
    expected = float(np.mean([average_precision_score(labels[:, c].numpy(), scores[:, c].numpy())
                              for c in range(20) if labels[:, c].any()]))
    call = describe_call("metric1", scores, labels)
    got = wl.number(student.task_1.metric1(scores, labels), call)
    assert_close(torch.tensor(got, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64), call=call,
                 rtol=1e-5, atol=1e-6)


def gaussian_blobs(height: int, width: int, centres: list) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    total = torch.zeros(height, width, dtype=torch.float64)
    for cy, cx, sigma, peak in centres:
        total = torch.maximum(total, peak * torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2)))
    return total.float()


@pytest.mark.weight(1)
@pytest.mark.number("1.15")
@pytest.mark.part("extended")
@settings(max_examples=30)
@given(st.lists(st.tuples(st.floats(0, 47), st.floats(0, 63), st.floats(0.7, 6), st.floats(0.55, 1.0)),
                min_size=0, max_size=5), st.sampled_from([0.3, 0.5]))
def test_boxes_from_heatmap_random_blobs(student, reference, wl, centres, threshold):
    """boxes_from_heatmap on random Gaussian blobs (some merging, some touching the border)"""
    heat = gaussian_blobs(48, 64, centres)
    call = describe_call("boxes_from_heatmap", heat, threshold)
    expected_boxes, expected_scores = reference.task_1.boxes_from_heatmap(heat, threshold)
    got = student.task_1.boxes_from_heatmap(heat, threshold)
    check(isinstance(got, (tuple, list)) and len(got) == 2, f"expected (boxes, scores), got {describe(got)}",
          call=call)
    boxes = wl.tensor(got[0], "boxes", call, torch.float64).reshape(-1, 4)
    scores = wl.tensor(got[1], "scores", call, torch.float64).reshape(-1)
    expected_boxes = expected_boxes.to(torch.float64)
    check(boxes.shape[0] == expected_boxes.shape[0], f"expected {expected_boxes.shape[0]} boxes, got "
          f"{boxes.shape[0]}", call=call, hint="one box per 8-connected region of heatmap >= threshold")
    inclusive = expected_boxes.clone()
    inclusive[:, 2:] -= 1
    # Order among equal scores is not checked: compare as sets, with the scores attached.
    rows = torch.cat([boxes, scores[:, None]], 1)
    for candidate in (expected_boxes, inclusive):
        try:
            wl.same_box_sets(rows, torch.cat([candidate, expected_scores.to(torch.float64)[:, None]], 1), atol=1e-5,
                             call=call, what="(box, score) rows", hint="box = (min col, min row, max col + 1, "
                                                                       "max row + 1); score = largest value inside")
            break
        except GradingFailure:
            if candidate is inclusive:
                raise
    check(bool((scores[:-1] >= scores[1:]).all()), "boxes are not sorted by score (highest first)", call=call)


# -- Task 2 -------------------------------------------------------------------------------------------

@st.composite
def box_sets(draw, max_count: int = 25):
    count = draw(st.integers(0, max_count))
    grid = draw(st.booleans())
    if grid:
        rows = draw(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(0, 5), st.integers(0, 5)),
                             min_size=count, max_size=count))
    else:
        rows = draw(st.lists(st.tuples(st.floats(0, 100, width=32), st.floats(0, 100, width=32),
                                       st.floats(0, 40, width=32), st.floats(0, 40, width=32)),
                             min_size=count, max_size=count))
    return torch.tensor([[x, y, x + w, y + h] for x, y, w, h in rows], dtype=torch.float32).reshape(-1, 4)


@pytest.mark.weight(1)
@pytest.mark.number("2.9")
@pytest.mark.part("extended")
@given(box_sets(), box_sets())
def test_iou_random(student, reference, boxes1, boxes2):
    """iou on random boxes (touching, nested, empty), [N, 4] x [M, 4] and [4] x [M, 4]"""
    expected = reference.utils.iou(boxes1, boxes2)
    assert_close(student.utils.iou(boxes1, boxes2), expected, call=describe_call("iou", boxes1, boxes2),
                 rtol=1e-5, atol=1e-6, hint="IoU of two empty boxes is 0, not NaN")
    if boxes1.shape[0]:
        assert_close(student.utils.iou(boxes1[0], boxes2), expected[0], call=describe_call("iou", boxes1[0], boxes2),
                     rtol=1e-5, atol=1e-6, hint="a single box [4] against [M, 4] boxes gives [M] values")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.10")
@pytest.mark.part("extended")
@settings(max_examples=40)
@given(box_sets(40), st.sampled_from([0.0, 0.05, 0.3]), st.sampled_from([0.3, 0.5]),
       st.lists(st.sampled_from([0.02, 0.05, 0.3, 0.3, 0.7, 0.9]), min_size=40, max_size=40))
def test_nms_ties_and_boundaries(student, reference, boxes, threshold, iou_threshold, values):
    """nms with equal scores, scores at the threshold and IoU at the threshold"""
    scores = torch.tensor(values[: boxes.shape[0]], dtype=torch.float64)
    boxes = boxes.to(torch.float64)  # exact arithmetic on the integer grid: IoU at the threshold is exact
    expected = reference.utils.nms(boxes, scores, threshold, iou_threshold)
    call = describe_call("nms", boxes, scores, threshold, iou_threshold)
    got = student.utils.nms(boxes, scores, threshold, iou_threshold)
    check(isinstance(got, (tuple, list)) and len(got) == 2, f"expected (boxes, scores), got {describe(got)}",
          call=call)
    assert_close(got[0], expected[0], call=call, what="boxes", hint="keep score > threshold; suppress IoU > "
                 "iou_threshold (strictly); equal scores in index order (stable sort)")
    assert_close(got[1], expected[1], call=call, what="scores")


@st.composite
def box_pairs(draw):
    rows = draw(st.lists(st.tuples(st.floats(0, 1, width=32), st.floats(0, 1, width=32),
                                   st.floats(0, 0.5, width=32), st.floats(0, 0.5, width=32)),
                         min_size=2, max_size=2))
    return [torch.tensor([x, y, x + w + 0.01, y + h + 0.01], dtype=torch.float64) for x, y, w, h in rows]


@pytest.mark.weight(1)
@pytest.mark.number("2.19")
@settings(max_examples=40)
@given(box_pairs())
def test_iou_random_pairs(student, wl, data):
    """iou of two random boxes (apart, overlapping, nested; normalised coordinates)"""
    import torchvision

    a, b = data
    call = describe_call("iou", a, b)
    got = student.utils.iou(a, b)
    expected = torchvision.ops.box_iou(a[None], b[None])[0, 0]
    assert_close(torch.tensor(wl.number(got, call), dtype=torch.float64), expected, call=call, rtol=1e-5, atol=1e-7,
                 hint="clamp the intersection's width and height at 0")


@pytest.mark.weight(1)
@pytest.mark.number("2.20")
@settings(max_examples=25)
@given(box_sets(40), st.lists(st.floats(0, 1, width=32), min_size=40, max_size=40, unique=True))
def test_nms_random_course(student, wl, boxes, values):
    """nms(bounding_boxes, confidence_score, 0.05) on random boxes: threshold, then greedy NMS at IoU 0.3"""
    import torchvision

    boxes = boxes.to(torch.float64) + torch.arange(boxes.shape[0], dtype=torch.float64)[:, None] * 1e-3
    boxes[:, 2:] += 1.0  # proposals have an area (selective search gives boxes of at least a pixel)
    scores = torch.tensor(values[: boxes.shape[0]], dtype=torch.float64)
    call = describe_call("nms", boxes, scores, 0.05)
    got = student.utils.nms(boxes, scores, 0.05)
    candidates = torch.nonzero(scores > 0.05).flatten()
    ious = torchvision.ops.box_iou(boxes[candidates], boxes[candidates])
    assume(not bool(((ious - 0.3).abs() < 1e-6).any()))  # IoU exactly 0.3: the handout does not say > or >=
    keep = candidates[torchvision.ops.nms(boxes[candidates], scores[candidates], 0.3)]
    wl.check_nms_result(got, boxes[keep], scores[keep], call)


def map_parameters(student_info: dict, reference_state: dict) -> dict:
    """Reference weights under the student's parameter names, matched by group and order.

    The handout fixes the attribute names (features, classifier, score_fc, bbox_fc) but not
    the indices inside ``classifier`` (dropout placement): within each group, parameters are
    matched in order, by shape.
    """
    groups = ("features", "classifier", "score_fc", "bbox_fc")
    mine = {g: [(n, tuple(s)) for n, s, _g, _d in student_info["parameters"] if n.split(".", 1)[0] == g]
            for g in groups}
    theirs = {g: [(n, tuple(v.shape)) for n, v in reference_state.items() if n.split(".", 1)[0] == g]
              for g in groups}
    others = [n for n, *_ in student_info["parameters"] if n.split(".", 1)[0] not in groups]
    if others:
        raise GradingFailure(f"your WSDDN has parameters outside features/classifier/score_fc/bbox_fc: {others[:4]}; "
                             "this test needs the handout's architecture (AlexNet conv1-5, fc6/fc7 of 4096, "
                             "score_fc and bbox_fc)")
    mapped = {}
    for group in groups:
        if [s for _, s in mine[group]] != [s for _, s in theirs[group]]:
            raise GradingFailure(f"your WSDDN.{group} has parameter shapes {[list(s) for _, s in mine[group]]}; "
                                 f"expected {[list(s) for _, s in theirs[group]]} (AlexNet conv1-5 / fc6-fc7 of 4096 / "
                                 "Linear(4096, 20))")
        for (name, _), (ref_name, _) in zip(mine[group], theirs[group]):
            mapped[name] = reference_state[ref_name]
    return mapped


@pytest.mark.weight(3)
@pytest.mark.number("2.11")
def test_wsddn_forward_matches_reference(student, reference, wl, course):
    """WSDDN.forward with the reference's weights: features, RoI pooling in pixels, both streams"""
    torch.manual_seed(41)
    ref_net = reference.wsddn.WSDDN(classes=wl.classes).eval()
    state = ref_net.state_dict()
    net = wl.eval_mode(student.wsddn.WSDDN(classes=wl.classes))
    net.load_state_dict(map_parameters(module_info(net), state), strict=False)
    generator = torch.Generator().manual_seed(42)
    image = torch.randn(1, 3, 512, 512, generator=generator)
    # Corners on multiples of 16 below 256: spatial_scale 1/16 and 31/512 pool the same cells.
    corners = torch.randint(0, 10, (8, 2), generator=generator) * 16
    sides = torch.randint(1, 6, (8, 2), generator=generator) * 16
    rois = torch.cat([corners, corners + sides], 1).float()
    with torch.no_grad():
        expected = ref_net(image, rois)
    call = describe_call("WSDDN().eval()", image, rois) + "  (reference weights)"

    def matches(out) -> bool:
        return (isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(expected.shape)
                and bool(torch.allclose(out.double(), expected.double(), rtol=2e-3, atol=1e-6)))

    # The starter fixes neither the container nor the scale of rois: any reading that gives the
    # reference's scores is the student's own convention (their loops pass rois that way).
    found = course.wsddn_forward(net, image, rois, accept=matches)
    if found.reading:
        return
    got = found.output
    check(got is not None, "WSDDN.forward failed for every way of passing the rois: "
          + "; ".join(f"{r}: {e}" for r, e in found.attempts), call=call)
    assert_close(got, expected, call=call + " (rois in pixels and in [0, 1], as tensors and lists, tried)",
                 rtol=2e-3, atol=1e-6, hint="roi_pool(features, [rois], output_size=(6, 6), spatial_scale=1/16) "
                                            "with rois in pixels of the input image; fc6/fc7; "
                                            "softmax(score_fc, dim=1) * softmax(bbox_fc, dim=0)")


@st.composite
def scored_regions(draw):
    regions = draw(st.integers(0, 30))
    seed = draw(st.integers(0, 2**31))
    generator = torch.Generator().manual_seed(seed)
    xy = (torch.rand(regions, 2, generator=generator) * 10).round() / 10
    boxes = torch.cat([xy, xy + 0.1 + (torch.rand(regions, 2, generator=generator) * 5).round() / 10], 1)
    probs = torch.rand(regions, 20, generator=generator) ** 4
    return probs.double(), boxes.double()


@pytest.mark.weight(1)
@pytest.mark.number("2.12")
@pytest.mark.part("extended")
@settings(max_examples=30)
@given(scored_regions())
def test_get_detections_random(student, reference, wl, data):
    """get_detections on random region scores (20 classes)"""
    probs, rois = data
    call = describe_call("get_detections", probs, rois, 0.05, 0.3)
    expected = wl.sort_detections(*reference.task_2.get_detections(probs, rois, 0.05, 0.3))
    got = student.task_2.get_detections(probs, rois, 0.05, 0.3)
    check(isinstance(got, (tuple, list)) and len(got) == 3, f"expected (boxes, scores, labels), got {describe(got)}",
          call=call)
    got = wl.sort_detections(wl.tensor(got[0], "boxes", call, torch.float64).reshape(-1, 4),
                             wl.tensor(got[1], "scores", call, torch.float64).reshape(-1),
                             wl.tensor(got[2], "labels", call, torch.int64).reshape(-1))
    for what, g, e in zip(("boxes", "scores", "labels"), got, expected):
        assert_close(g, e.to(g.dtype), call=call, what=f"{what} (sorted by class, then score)", rtol=1e-6, atol=1e-7)


@st.composite
def detection_sets(draw):
    images = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31))
    generator = torch.Generator().manual_seed(seed)
    detections, truths = [], []
    for _ in range(images):
        count = int(torch.randint(0, 5, (1,), generator=generator))
        xy = torch.rand(count, 2, generator=generator) * 50
        gt = torch.cat([xy, xy + 5 + torch.rand(count, 2, generator=generator) * 30], 1)
        gt_labels = torch.randint(0, 4, (count,), generator=generator)
        repeats = torch.randint(0, 4, (count,), generator=generator)
        det = gt.repeat_interleave(repeats, 0) + torch.randn(int(repeats.sum()), 4, generator=generator) * 4
        labels = gt_labels.repeat_interleave(repeats, 0)
        extra = int(torch.randint(0, 3, (1,), generator=generator))
        xy = torch.rand(extra, 2, generator=generator) * 60
        det = torch.cat([det, torch.cat([xy, xy + 10], 1)])
        labels = torch.cat([labels, torch.randint(0, 4, (extra,), generator=generator)])
        detections.append((det, torch.rand(det.shape[0], generator=generator), labels))
        truths.append((gt, gt_labels))
    return detections, truths


@pytest.mark.weight(0.5)
@pytest.mark.number("2.13")
@pytest.mark.part("extended")
@settings(max_examples=40)
@given(detection_sets())
def test_calculate_map_random(student, reference, wl, data):
    """calculate_map on random detections (duplicates, wrong classes, misses)"""
    detections, truths = data
    expected, _ = reference.task_2.calculate_map(detections, truths, num_classes=4)
    got = student.task_2.calculate_map(detections, truths, num_classes=4)
    wl.check_aps(got, expected, describe_call("calculate_map", detections, truths, num_classes=4))


def detection_tables(dataset_items: list, wl, seed: int) -> list[torch.Tensor]:
    """cls_prob [K, 20] per test image: high scores on proposals that overlap a ground-truth box of the
    class well (IoU >= 0.6), some on proposals that overlap every box of the class little (IoU <= 0.25:
    false positives), some on absent classes; the rest far below any threshold. No scored proposal's
    IoU lies between 0.25 and 0.6, so an IoU threshold anywhere in 0.3-0.5 gives the same matches."""
    import torchvision

    generator = torch.Generator().manual_seed(seed)
    tables = []
    for item in dataset_items:
        rois = wl.tensor(item["rois"], "rois", "VOCDataset(...)[i]['rois']", torch.float64).reshape(-1, 4)
        boxes = wl.tensor(item["gt_boxes"], "gt_boxes", "VOCDataset(...)[i]['gt_boxes']", torch.float64).reshape(-1, 4)
        classes = wl.tensor(item["gt_classes"], "gt_classes", "", torch.int64).reshape(-1)
        table = torch.rand(rois.shape[0], 20, generator=generator) * 1e-3
        for cls in range(20):
            mine = boxes[classes == cls]
            best = (torchvision.ops.box_iou(rois, mine).amax(1) if mine.shape[0] else
                    torch.zeros(rois.shape[0], dtype=torch.float64))
            good = torch.nonzero(best >= 0.6).flatten()
            poor = torch.nonzero(best <= 0.25).flatten()
            if mine.shape[0] and good.numel():
                picks = good[torch.randperm(good.numel(), generator=generator)[:2]]
                table[picks, cls] = 0.3 + 0.6 * torch.rand(picks.numel(), generator=generator)
                if float(torch.rand(1, generator=generator)) < 0.4:  # hits that only thresh 0.05 keeps
                    table[picks, cls] = 0.07 + 0.11 * torch.rand(picks.numel(), generator=generator)
            if poor.numel() and float(torch.rand(1, generator=generator)) < (0.5 if mine.shape[0] else 0.15):
                pick = poor[torch.randint(0, poor.numel(), (1,), generator=generator)]
                # Most false positives score between the two thresholds tested (0.05 and 0.2), some above.
                low, r = float(torch.rand(1, generator=generator)) < 0.6, torch.rand(1, generator=generator)
                table[pick, cls] = 0.06 + 0.13 * r if low else 0.3 + 0.6 * r
        tables.append(table.float())
    return tables


@pytest.mark.weight(4)
@pytest.mark.number("2.14")
@pytest.mark.sandbox(call_timeout=120)
@pytest.mark.parametrize("thresh", [0.05, 0.2])
def test_test_model_full_pass(student, reference, wl_data, wl, course, thresh):
    """test_model(model, val_loader, thresh): threshold, per-class NMS and AP over a small test set"""
    # (a trainval split too: a test loop may build VOCDataset() with the starter's defaults)
    data = wl_data({"trainval": 2, "test": 6}, seed=43, size=(80, 120), objects_per_image=(1, 2), per_object=4,
                   random_boxes=4, classes=wl.classes[:5])
    dataset = course.dataset(data, "test", 64, 12)
    items = [dataset[i] for i in range(len(data.voc.splits["test"]))]
    tables = detection_tables(items, wl, seed=int(thresh * 100))
    probes = course.probes()
    model = wl.eval_mode(probes.TableDetector([item["image"] for item in items], tables))
    loader = student.import_library("torch.utils.data").DataLoader(dataset, batch_size=1, shuffle=False)
    call = (f"test_model(model, DataLoader(VOCDataset('test', image_size=64, top_n=12), batch_size=1), "
            f"thresh={thresh}) with a stand-in model whose cls_prob the grader fixes per image")
    folder = course.course_folder(data)
    course.retry_left_out_constants("task_2", folder)
    entry = course.task_2_test_entry(dataset, loader)
    call = call.replace("test_model(", f"{entry}(", 1)
    # (from a course folder: a test_model that builds VOCDataset('test') itself finds the data)
    with course.chdir(folder), course.wandb_stubbed("task_2", "utils"):
        function = getattr(student.task_2, entry)
        # A test loop given extra parameters (epoch, args) is called as its own train loop calls it.
        parameters = student.import_library("inspect").signature(function).parameters
        extra = {"args": course.script_args("task_2")} if "args" in list(parameters) else {}
        got = function(model, loader, thresh, **extra)
    check(got is not None, "test_model returned None: return the class-wise APs (and / or the mAP), as the "
          "starter's train_model uses it (ap = test_model(model, val_loader))", call=call)

    detections, truths = [], []
    for item, table in zip(items, tables):
        rois = wl.tensor(item["rois"], "rois", call, torch.float64).reshape(-1, 4)
        detections.append(reference.task_2.get_detections(table.double(), rois, thresh, 0.3))
        truths.append((wl.tensor(item["gt_boxes"], "gt_boxes", call, torch.float64).reshape(-1, 4),
                       wl.tensor(item["gt_classes"], "gt_classes", call, torch.int64).reshape(-1)))
    expected, _ = reference.task_2.calculate_map(detections, truths, num_classes=20)
    # What test_model returns is the student's choice: class-wise APs, (APs, mAP), or the mAP.
    if isinstance(got, (tuple, list)) and len(got) == 2 and np.ndim(np.asarray(got[1], dtype=object)) == 0:
        wl.check_aps(got, expected, call, atol=1e-5)
        return
    values = np.asarray([np.nan if v is None else float(v) for v in np.asarray(got, dtype=object).reshape(-1)])
    if values.size == 1:
        readings = [float(np.nanmean(expected)), float(np.nan_to_num(expected, nan=0.0).mean())]
        check(any(abs(values[0] - r) <= 1e-5 for r in readings),
              f"mAP: expected {readings[0]:.6g} (mean over the classes with ground truth), got {values[0]:.6g}",
              call=call)
        return
    check(values.size == 20, f"expected 20 class-wise APs (or the mAP), got {describe(got)}", call=call)
    wl.check_aps((values, float(np.nanmean(np.where(np.isnan(expected), np.nan, values)))), expected, call, atol=1e-5)
