"""Independent, deliberately plain (loop-based) implementations used as oracles for the reference.

They follow the textbook descriptions (PASCAL VOC devkit's ``VOCevaldet``, scikit-learn,
``scipy.ndimage``) rather than the reference's vectorized code.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch
import torchvision


def box_iou_loop(a, b) -> float:
    """IoU of two boxes (x1, y1, x2, y2), float64, one at a time."""
    a = [float(v) for v in a]
    b = [float(v) for v in b]
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def voc_ap_loop(detections, ground_truths, num_classes: int, iou_threshold: float = 0.5):
    """Class-wise AP, the VOC devkit way: a loop over classes and sorted detections, all-point interpolation."""
    aps = np.full(num_classes, np.nan)
    for cls in range(num_classes):
        gts = {}
        npos = 0
        for image, (boxes, labels) in enumerate(ground_truths):
            boxes = torch.as_tensor(boxes).reshape(-1, 4).tolist()
            labels = torch.as_tensor(labels).reshape(-1).tolist()
            mine = [box for box, label in zip(boxes, labels) if label == cls]
            gts[image] = {"boxes": mine, "taken": [False] * len(mine)}
            npos += len(mine)
        if npos == 0:
            continue
        found = []  # (score, sequence, image, box)
        for image, (boxes, scores, labels) in enumerate(detections):
            boxes = torch.as_tensor(boxes).reshape(-1, 4).tolist()
            for box, score, label in zip(boxes, torch.as_tensor(scores).reshape(-1).tolist(),
                                         torch.as_tensor(labels).reshape(-1).tolist()):
                if label == cls:
                    found.append((score, len(found), image, box))
        found.sort(key=lambda item: (-item[0], item[1]))
        tp, fp = [], []
        for _, _, image, box in found:
            entry = gts[image]
            best, best_index = -1.0, -1
            for index, gt in enumerate(entry["boxes"]):
                overlap = box_iou_loop(box, gt)
                if overlap > best:
                    best, best_index = overlap, index
            if best >= iou_threshold and not entry["taken"][best_index]:
                entry["taken"][best_index] = True
                tp.append(1.0)
                fp.append(0.0)
            else:
                tp.append(0.0)
                fp.append(1.0)
        tp_c, fp_c = np.cumsum(tp), np.cumsum(fp)
        recall = tp_c / npos
        precision = tp_c / np.maximum(tp_c + fp_c, np.finfo(np.float64).eps)
        mrec = np.concatenate(([0.0], recall, [1.0]))
        mpre = np.concatenate(([0.0], precision, [0.0]))
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        changes = np.where(mrec[1:] != mrec[:-1])[0]
        aps[cls] = float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))
    valid = ~np.isnan(aps)
    return aps, float(aps[valid].mean()) if valid.any() else 0.0


def metric1_sklearn(output, target) -> float:
    """Mean of scikit-learn's average precision over the classes that have a positive."""
    from sklearn.metrics import average_precision_score

    scores = np.asarray(output, dtype=np.float64)
    labels = np.asarray(target) > 0.5
    values = [average_precision_score(labels[:, c], scores[:, c]) for c in range(labels.shape[1]) if labels[:, c].any()]
    return float(np.mean(values)) if values else 0.0


def metric2_sklearn(output, target, threshold: float = 0.5) -> float:
    from sklearn.metrics import recall_score

    # Micro-averaged recall over (image, class) pairs = binary recall of the flattened pairs
    # (passing 2-D arrays with one column would make scikit-learn read them as binary with label 0).
    labels = (np.asarray(target) > 0.5).astype(int).ravel()
    predictions = (np.asarray(output) >= threshold).astype(int).ravel()
    return float(recall_score(labels, predictions, pos_label=1, average="binary", zero_division=0))


def detections_loop(cls_prob, rois, thresh: float = 0.05, nms_threshold: float = 0.3):
    """Per-class threshold + torchvision NMS, one class at a time (the handout's loop)."""
    boxes_out, scores_out, labels_out = [], [], []
    for cls in range(cls_prob.shape[1]):
        keep = cls_prob[:, cls] > thresh
        boxes, scores = rois[keep], cls_prob[keep, cls]
        kept = torchvision.ops.nms(boxes.float(), scores.float(), nms_threshold)
        boxes_out.append(boxes[kept])
        scores_out.append(scores[kept])
        labels_out.append(torch.full((kept.numel(),), cls, dtype=torch.long))
    return torch.cat(boxes_out), torch.cat(scores_out), torch.cat(labels_out)


def sort_detections(boxes, scores, labels):
    """Detections in a canonical order (class, then score descending, then box) for order-free comparison."""
    keys = np.lexsort(tuple(np.asarray(boxes)[:, ::-1].T) + (-np.asarray(scores, dtype=np.float64),
                                                             np.asarray(labels)))
    index = torch.from_numpy(keys.copy())
    return boxes[index], scores[index], labels[index]


def boxes_from_heatmap_loop(heatmap, threshold: float = 0.5):
    """One box per 8-connected component of ``heatmap >= threshold`` via ``scipy.ndimage.find_objects``."""
    values = np.asarray(heatmap, dtype=np.float32)
    components, count = scipy.ndimage.label(values >= threshold, structure=np.ones((3, 3)))
    rows = []
    for index, (ys, xs) in enumerate(scipy.ndimage.find_objects(components), start=1):
        peak = float(values[components == index].max())
        first = int(np.flatnonzero(components.reshape(-1) == index)[0])
        rows.append((-peak, first, [xs.start, ys.start, xs.stop, ys.stop], peak))
    rows.sort(key=lambda row: (row[0], row[1]))
    boxes = torch.tensor([row[2] for row in rows], dtype=torch.float32).reshape(-1, 4)
    scores = torch.tensor([row[3] for row in rows], dtype=torch.float32)
    return boxes, scores
