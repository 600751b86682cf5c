"""Typical student bugs in fcos_detection; each must lose points (tests/test_mutants.py)."""

from grader.mutation import Mutant

MUTANTS = [
    Mutant("iou_no_clamp", "detection_utils.py",
           find="inter = width.clamp(min=0) * height.clamp(min=0)",
           replace="inter = width * height",
           select="box_iou", why="IoU without clamping negative overlaps (disjoint boxes get IoU > 0)"),
    Mutant("iou_union_wrong", "detection_utils.py",
           find="return inter / ((area1[:, None] + area2) - inter)",
           replace="return inter / (area1[:, None] + area2)",
           select="box_iou", why="forgot to subtract the intersection from the union"),
    Mutant("nms_ge_threshold", "detection_utils.py",
           find="above = inter.div_(union) > threshold",
           replace="above = inter.div_(union) >= threshold",
           select="nms", why=">= instead of > at the IoU threshold"),
    Mutant("nms_unstable_sort", "detection_utils.py",
           find="order = torch.sort(scores, descending=True, stable=True).indices",
           replace="order = torch.sort(scores, stable=True).indices.flip(0)",
           select="nms", why="sorts ascending and flips: equal scores visited in reverse index order"),
    Mutant("nms_ascending", "detection_utils.py",
           find="order = torch.sort(scores, descending=True, stable=True).indices",
           replace="order = torch.sort(scores, descending=False, stable=True).indices",
           select="nms", why="visits the lowest score first"),
    Mutant("class_nms_ignores_class", "detection_utils.py",
           find="    return _greedy_nms(boxes, scores, iou_threshold, class_ids)\n",
           replace="    return _greedy_nms(boxes, scores, iou_threshold)\n",
           select="class_spec_nms", why="boxes of different classes suppress each other"),
]
