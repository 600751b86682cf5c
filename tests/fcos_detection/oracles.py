"""Independent, deliberately simple (loop-based, float64 / exact) implementations used as oracles.

Nothing here shares code with the reference: they follow the written rules
(VOC devkit evaluation, FCOS matching, greedy NMS) one element at a time.
"""

from __future__ import annotations

import math
from fractions import Fraction


def iou_xyxy(a: list[float], b: list[float]) -> float:
    """IoU of two boxes in continuous coordinates."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def voc_eval_class(dets: list[tuple[int, float, list[float]]], gts: dict[int, list[tuple[list[float], bool]]],
                   iou_threshold: float, use_07_metric: bool) -> float:
    """AP of one class, the VOC devkit way.

    Args:
        dets: (image, score, box) in input order.
        gts: image -> [(box, difficult)] in annotation order.
    """
    npos = sum(1 for boxes in gts.values() for _, diff in boxes if not diff)
    if npos == 0:
        return math.nan
    order = sorted(range(len(dets)), key=lambda i: -dets[i][1])  # stable
    used = {img: [False] * len(boxes) for img, boxes in gts.items()}
    tp, fp = [], []
    for i in order:
        img, _, box = dets[i]
        best, best_j = -math.inf, -1
        for j, (gbox, _) in enumerate(gts.get(img, [])):
            ov = iou_xyxy(box, gbox)
            if ov > best:
                best, best_j = ov, j
        if best_j >= 0 and best >= iou_threshold:
            if gts[img][best_j][1]:
                continue  # difficult: ignored
            if not used[img][best_j]:
                used[img][best_j] = True
                tp.append(1)
                fp.append(0)
            else:
                tp.append(0)
                fp.append(1)
        else:
            tp.append(0)
            fp.append(1)
    ctp = cfp = 0
    rec, prec = [], []
    for t, f in zip(tp, fp):
        ctp += t
        cfp += f
        rec.append(Fraction(ctp, npos))
        prec.append(ctp / (ctp + cfp))
    if use_07_metric:
        total = 0.0
        for k in range(11):
            candidates = [p for r, p in zip(rec, prec) if r >= Fraction(k, 10)]
            total += max(candidates) if candidates else 0.0
        return total / 11
    mrec = [Fraction(0)] + rec + [Fraction(1)]
    mpre = [0.0] + prec + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return float(sum(float(mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1)
                     if mrec[i + 1] != mrec[i]))


def voc_eval(detections: list, ground_truths: list, num_classes: int, iou_threshold: float = 0.5,
             use_07_metric: bool = False, difficult: list | None = None) -> tuple[list[float], float]:
    """Per-class AP and mAP from per-image tensors (the layout of ``compute_map``)."""
    aps = []
    for c in range(num_classes):
        dets, gts = [], {}
        for img, rows in enumerate(detections):
            for row in rows.tolist():
                if int(row[4]) == c:
                    dets.append((img, row[5], row[:4]))
        for img, rows in enumerate(ground_truths):
            flags = difficult[img].tolist() if difficult is not None else [False] * rows.shape[0]
            for row, diff in zip(rows.tolist(), flags):
                if int(row[4]) == c:
                    gts.setdefault(img, []).append((row[:4], bool(diff)))
        aps.append(voc_eval_class(dets, gts, iou_threshold, use_07_metric))
    valid = [a for a in aps if not math.isnan(a)]
    return aps, (sum(valid) / len(valid) if valid else math.nan)


def greedy_nms(boxes: list[list[float]], scores: list[float], threshold: float,
               classes: list[int] | None = None) -> list[int]:
    """Textbook greedy NMS, float32 IoU as torchvision computes it (``inter / (a1 + a2 - inter)``), compared
    with the threshold in float64."""
    import numpy as np

    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep: list[int] = []
    for i in order:
        ok = True
        for k in keep:
            if classes is not None and classes[i] != classes[k]:
                continue
            w = max(np.float32(0), min(b[i, 2], b[k, 2]) - max(b[i, 0], b[k, 0]))
            h = max(np.float32(0), min(b[i, 3], b[k, 3]) - max(b[i, 1], b[k, 1]))
            inter = np.float32(w * h)
            if float(inter / np.float32(area[i] + area[k] - inter)) > threshold:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def match_locations_loop(locations: dict, strides: dict, gt_boxes: list[list[float]]) -> dict:
    """FCOS matching one location and one box at a time (the written rules)."""
    out = {}
    for level, points in locations.items():
        stride = strides[level]
        lower = 0.0 if level == "p3" else 4 * stride
        upper = math.inf if level == "p5" else 8 * stride
        rows = []
        for x, y in points:
            best, best_area = None, math.inf
            for box in gt_boxes:
                left, top, right, bottom = x - box[0], y - box[1], box[2] - x, box[3] - y
                if min(left, top, right, bottom) <= 0:
                    continue
                reach = max(left, top, right, bottom)
                if not lower < reach < upper:
                    continue
                area = (box[2] - box[0]) * (box[3] - box[1])
                if area < best_area:
                    best, best_area = box, area
            rows.append(list(best) if best is not None else [-1.0] * 5)
        out[level] = rows
    return out
