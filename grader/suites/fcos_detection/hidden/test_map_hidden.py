"""Hidden tests of compute_map: random detections against the reference, and edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from grader.compare import assert_close, describe_call
from grader.student import call_keeping_inputs

# This project's extended FCOS work: graded only in the manifest's 'extended' profile.
pytestmark = pytest.mark.part("extended")

NUM_CLASSES = 4


def random_scene(seed: int, images: int = 6):
    """Jittered copies of GT boxes (hits, near misses, duplicates) and clutter; scores without ties.

    Every class has 1, 3, 7 or 9 non-difficult boxes, so no recall equals a multiple of 0.1 except 0 and 1
    (11-point AP is then the same whether the recall levels are exact tenths or np.arange(0, 1.1, 0.1)).
    """
    generator = torch.Generator().manual_seed(seed)
    counts = [(1, 3, 7, 9)[int(i)] for i in torch.randint(0, 4, (NUM_CLASSES,), generator=generator)]
    gts = [[] for _ in range(images)]
    difficult = [[] for _ in range(images)]
    for cls, count in enumerate(counts):
        extra = int(torch.randint(0, 2, (1,), generator=generator))
        for k in range(count + extra):
            image = int(torch.randint(0, images, (1,), generator=generator))
            xy = torch.rand(2, generator=generator) * 150
            wh = torch.rand(2, generator=generator) * 60 + 10
            gts[image].append(torch.cat([xy, xy + wh, torch.tensor([float(cls)])]))
            difficult[image].append(k >= count)
    dets = [[] for _ in range(images)]
    for image in range(images):
        for row in gts[image]:
            for _ in range(int(torch.randint(0, 3, (1,), generator=generator))):
                jitter = torch.randn(4, generator=generator) * 4
                dets[image].append(torch.cat([row[:4] + jitter, row[4:]]))
        for _ in range(int(torch.randint(0, 4, (1,), generator=generator))):
            xy = torch.rand(2, generator=generator) * 150
            wh = torch.rand(2, generator=generator) * 60 + 10
            cls = torch.randint(0, NUM_CLASSES, (1,), generator=generator).float()
            dets[image].append(torch.cat([xy, xy + wh, cls]))
    total = sum(len(d) for d in dets)
    scores = torch.randperm(total, generator=generator).float().add(1) / (total + 1)
    detections, offset = [], 0
    for image in range(images):
        rows = torch.stack(dets[image]) if dets[image] else torch.zeros(0, 5)
        detections.append(torch.cat([rows, scores[offset:offset + len(rows), None]], dim=1))
        offset += len(rows)
    ground_truths = [torch.stack(g) if g else torch.zeros(0, 5) for g in gts]
    flags = [torch.tensor(d, dtype=torch.bool) for d in difficult]
    return detections, ground_truths, flags


@pytest.mark.weight(2)
@pytest.mark.number("9.2")
@pytest.mark.parametrize("use_07_metric", [False, True])
def test_map_random_scenes(student, reference, use_07_metric):
    """compute_map on random scenes (duplicates, difficult boxes, clutter) equals the reference"""
    for seed in range(6):
        detections, ground_truths, difficult = random_scene(100 + seed)
        threshold = (0.5, 0.3, 0.7)[seed % 3]
        got = call_keeping_inputs(student.detection_utils.compute_map, detections, ground_truths, NUM_CLASSES,
                                  iou_threshold=threshold, use_07_metric=use_07_metric, difficult=difficult)
        expected = reference.detection_utils.compute_map(detections, ground_truths, NUM_CLASSES,
                                                         iou_threshold=threshold, use_07_metric=use_07_metric,
                                                         difficult=difficult)
        call = describe_call("compute_map", detections, ground_truths, NUM_CLASSES, iou_threshold=threshold,
                             use_07_metric=use_07_metric, difficult=difficult)
        ap, mean_ap = got if isinstance(got, (tuple, list)) and len(got) == 2 else (got, None)
        assert_close(ap.double() if isinstance(ap, torch.Tensor) else ap, expected[0], equal_nan=True, rtol=1e-6,
                     atol=1e-9, call=call, what=f"AP per class (scene {seed})",
                     hint="rank detections by score over all images; each one takes the GT box of highest IoU in "
                          "its image and class; difficult boxes make it neither TP nor FP")
        assert_close(float(mean_ap) if mean_ap is not None else None, expected[1], rtol=1e-6, call=call,
                     what=f"mAP (scene {seed})")


@pytest.mark.weight(0.5)
@pytest.mark.number("9.3")
def test_map_edge_cases(student, reference):
    """compute_map with empty images, only-difficult classes and no detections at all"""
    box = [[0.0, 0.0, 10.0, 10.0]]
    cases = [
        # no detections anywhere: AP 0 for classes with GT
        ([torch.zeros(0, 6), torch.zeros(0, 6)], [torch.tensor([box[0] + [1.0]]), torch.zeros(0, 5)], None),
        # a class whose only box is difficult is NaN; a hit on it is ignored
        ([torch.tensor([box[0] + [2.0, 0.9], box[0] + [0.0, 0.8]])],
         [torch.tensor([box[0] + [2.0], box[0] + [0.0]])], [torch.tensor([True, False])]),
        # detections in an image without ground truth are false positives
        ([torch.tensor([box[0] + [0.0, 0.9]]), torch.tensor([box[0] + [0.0, 0.5]])],
         [torch.zeros(0, 5), torch.tensor([box[0] + [0.0]])], None),
    ]
    for detections, ground_truths, difficult in cases:
        got = student.detection_utils.compute_map(detections, ground_truths, 3, difficult=difficult)
        expected = reference.detection_utils.compute_map(detections, ground_truths, 3, difficult=difficult)
        call = describe_call("compute_map", detections, ground_truths, 3, difficult=difficult)
        assert_close(got[0].double(), expected[0], equal_nan=True, rtol=1e-6, call=call, what="AP per class")
        if math.isnan(expected[1]):
            assert_close(float(got[1]), expected[1], equal_nan=True, call=call, what="mAP")
        else:
            assert_close(float(got[1]), expected[1], rtol=1e-6, call=call, what="mAP")


@pytest.mark.weight(0.5)
@pytest.mark.number("9.5")
@pytest.mark.parametrize("use_07_metric", [False, True])
def test_map_iou_equal_to_threshold_is_a_hit(student, reference, use_07_metric):
    """compute_map: a detection whose IoU equals iou_threshold is a true positive (IoU >= threshold)"""
    # IoU exactly 0.5 ([0, 0, 3, 1] and [1, 0, 4, 1]: 2 / 4) and exactly 0.25 (2 / 8), in float32 and float64;
    # a clear miss (IoU 0.2) and a hit on a difficult box exactly at the threshold (ignored, not a FP).
    ground_truths = [torch.tensor([[0.0, 0.0, 3.0, 1.0, 0.0], [10.0, 0.0, 15.0, 1.0, 1.0], [20.0, 0.0, 23.0, 1.0, 0.0]]),
                     torch.tensor([[0.0, 0.0, 5.0, 1.0, 1.0]])]
    difficult = [torch.tensor([False, False, True]), torch.tensor([False])]
    for threshold in (0.5, 0.25):
        detections = [torch.tensor([[1.0, 0.0, 4.0, 1.0, 0.0, 0.9],     # IoU 0.5 with the class-0 box
                                    [13.0, 0.0, 18.0, 1.0, 1.0, 0.8],   # IoU 0.25 with the class-1 box
                                    [21.0, 0.0, 24.0, 1.0, 0.0, 0.7]]),  # IoU 0.5 with the difficult box
                      torch.tensor([[4.0, 0.0, 9.0, 1.0, 1.0, 0.6]])]    # IoU 1 / 9: a FP at both thresholds
        got = call_keeping_inputs(student.detection_utils.compute_map, detections, ground_truths, 2,
                                  iou_threshold=threshold, use_07_metric=use_07_metric, difficult=difficult)
        expected = reference.detection_utils.compute_map(detections, ground_truths, 2, iou_threshold=threshold,
                                                         use_07_metric=use_07_metric, difficult=difficult)
        call = describe_call("compute_map", detections, ground_truths, 2, iou_threshold=threshold,
                             use_07_metric=use_07_metric, difficult=difficult)
        ap = got[0] if isinstance(got, (tuple, list)) and len(got) == 2 else got
        assert_close(ap.double() if isinstance(ap, torch.Tensor) else ap, expected[0], rtol=1e-6, call=call,
                     what=f"AP per class (iou_threshold={threshold})",
                     hint="a detection is a hit when its best IoU is >= iou_threshold (the VOC devkit's ovmax >= "
                          "ovthresh): IoU exactly at the threshold counts")
