"""Right answers written the way real 16-824 F22 object-localization students write them; each must keep
full marks in the course profile (tests/test_course_conventions.py). They are rewrites of the reference by
the project, in the styles seen in public solutions, not students' code."""

from pathlib import Path

from grader.mutation import Mutant

REFERENCE = Path(__file__).resolve().parents[3] / "reference" / "weak_localization"


def span(file: str, start: str, end: str) -> str:
    """The reference's text of ``file`` from ``start`` through ``end`` (both included, each found once)."""
    text = (REFERENCE / file).read_text(encoding="utf-8")
    first = text.index(start)
    return text[first:text.index(end, first) + len(end)]


DS, T1, T2, UT, WS, AX = "voc_dataset.py", "task_1.py", "task_2.py", "utils.py", "wsddn.py", "AlexNet.py"

ROIS = """        boxes = np.asarray(self.roi_data['boxes'][0][index], dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(self.roi_data['boxScores'][0][index], dtype=np.float64).reshape(-1)
        order = np.argsort(-scores, kind='stable')[:self.top_n]
        yxyx = boxes[order]
        proposals = torch.as_tensor(yxyx[:, [1, 0, 3, 2]] / np.array([width, height, width, height]),
                                    dtype=torch.float32)
"""
IOU = """    boxes1 = _as_boxes(box1, "box1")
    boxes2 = _as_boxes(box2, "box2")
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    result = _pairwise_iou(boxes1.reshape(-1, 4).to(dtype), boxes2.reshape(-1, 4).to(dtype))
    return result.reshape(boxes1.shape[:-1] + boxes2.shape[:-1])
"""
NMS = """    boxes = _as_boxes(bounding_boxes, "bounding_boxes", single_ok=False)
    scores = torch.as_tensor(confidence_score, device=boxes.device).reshape(-1)
    if scores.numel() != boxes.shape[0]:
        raise ValueError(f"confidence_score must have one entry per box ({boxes.shape[0]}), "
                         f"got {scores.numel()}")
    candidates = torch.nonzero(scores > threshold).flatten()
    keep = candidates[_greedy_keep(boxes[candidates], scores[candidates], iou_threshold)]
    return boxes[keep], scores[keep]
"""
METRIC2 = span(T1, "    scores = torch.as_tensor(output).detach().cpu()\n    labels = torch.as_tensor(target).detach()",
               "    return found / positives\n")
LOSS_SPAN = span(T1, "        output = model(input)\n        imoutput = torch.sigmoid(image_level_scores(output))",
                 "    criterion = localization_loss\n")
BUILD_LOSS = """        image_scores = cls_prob.sum(dim=0).clamp(0.0, 1.0)
        labels = label_vec.reshape(-1).to(image_scores)
        loss = F.binary_cross_entropy(image_scores, labels, reduction='sum')
"""
FORWARD = """        boxes = rois.reshape(-1, 4).to(dtype=image.dtype, device=image.device)
        features = self.features(image)
        pooled = self.roi_pool(features, [boxes])
"""
ROBUST_FORWARD = """    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION
        return self.classifier(self.features(x))
        # END SOLUTION


# BEGIN SOLUTION NO PROMPT"""
TEST_MODEL_RETURN = "    return calculate_map(detections, ground_truths, num_classes=num_classes)\n    # END SOLUTION\n\n\ndef train_model("

TRAIN_STEP = "        optimizer.zero_grad()\n        loss.backward()\n        optimizer.step()\n"

CONVENTIONS = [
    # -- Task 0 ---------------------------------------------------------------------------------------
    Mutant("rois_sorted_pairs_numpy", DS, find=ROIS, replace="""        # sort (boxScore, box) pairs by score and keep the top_n, as [xmin, ymin, xmax, ymax] / (w, h)
        pairs = sorted(zip(self.roi_data['boxScores'][0][index][:, 0], self.roi_data['boxes'][0][index]),
                       key=lambda pair: pair[0], reverse=True)[:self.top_n]
        proposals = np.asarray([[b[1] / width, b[0] / height, b[3] / width, b[2] / height] for _, b in pairs],
                               dtype=np.float32)
""", select="proposals or dataloader", why="rois as a float32 ndarray from Python-sorted pairs"),
    Mutant("rois_minus_one_offset", DS, find=ROIS, replace="""        scores = self.roi_data['boxScores'][0][index].flatten()
        boxes = self.roi_data['boxes'][0][index][np.argsort(-scores, kind='stable')][:self.top_n] - 1.0
        proposals = torch.tensor(np.stack([boxes[:, 1] / width, boxes[:, 0] / height,
                                           boxes[:, 3] / width, boxes[:, 2] / height], axis=1)).float()
""", select="proposals", why="VOC's 1-based pixel indices made 0-based before normalising"),
    # -- Task 1 ---------------------------------------------------------------------------------------
    Mutant("loss_bce_after_sigmoid_in_train", T1, find=LOSS_SPAN, replace=LOSS_SPAN.replace(
        "        imoutput = torch.sigmoid(image_level_scores(output))\n        loss = criterion(output, target)\n",
        "        _, _, H, W = output.shape\n"
        "        imoutput = torch.sigmoid(torch.nn.MaxPool2d(kernel_size=(H, W))(output).squeeze(-1).squeeze(-1))\n"
        "        loss = criterion(imoutput, target)\n").replace(
        "            loss = criterion(output, target)\n",
        "            loss = criterion(torch.sigmoid(F.max_pool2d(output, kernel_size=output.shape[2:]).flatten(1)),\n"
        "                             target)\n").replace(
        "    criterion = localization_loss\n", "    criterion = torch.nn.BCELoss()\n"),
        select="loss_in_train", why="max-pool and sigmoid in train(), nn.BCELoss() from main() (mean)"),
    Mutant("loss_bce_with_logits_summed", T1, find=LOSS_SPAN, replace=LOSS_SPAN.replace(
        "        loss = criterion(output, target)\n",
        "        loss = criterion(F.adaptive_max_pool2d(output, 1).view(output.shape[0], -1), target)\n").replace(
        "            loss = criterion(output, target)\n",
        "            loss = criterion(F.adaptive_max_pool2d(output, 1).view(output.shape[0], -1), target)\n").replace(
        "    criterion = localization_loss\n", "    criterion = torch.nn.BCEWithLogitsLoss(reduction='sum')\n"),
        select="loss_in_train", why="adaptive max pool in train(), BCEWithLogitsLoss(reduction='sum')"),
    # (issue 22: the training step, LocalizerAlexNet's values, inputs left as they were)
    Mutant("train_zero_grad_after_step", T1,
           find=TRAIN_STEP,
           replace="        loss.backward()\n        optimizer.step()\n        optimizer.zero_grad(set_to_none=True)\n",
           select="steps_on_each_batch", why="zero_grad(set_to_none=True) after each step instead of before backward"),
    Mutant("train_model_zero_grad", T1,
           find=TRAIN_STEP,
           replace="        model.zero_grad()\n        loss.backward()\n        optimizer.step()\n",
           select="steps_on_each_batch", why="model.zero_grad() instead of optimizer.zero_grad()"),
    Mutant("localizer_sigmoid_output", AX,
           find="        return self.classifier(self.features(x))\n        # END SOLUTION\n\n\nclass LocalizerAlexNetRobust",
           replace="        x = self.features(x)\n        x = self.classifier(x)\n        return torch.sigmoid(x)\n"
                   "        # END SOLUTION\n\n\nclass LocalizerAlexNetRobust",
           select="score_values", why="sigmoid at the end of forward (train() then uses BCELoss on the max)"),
    Mutant("metric1_sigmoid_on_a_copy", T1,
           find="    scores = torch.as_tensor(output).detach().to(torch.float64).cpu()\n",
           replace="    scores = output.clone().detach()\n    scores.sigmoid_()\n    scores = scores.to(torch.float64).cpu()\n",
           select="metric1_is_map", why="sigmoid_ in place, on a copy of the caller's scores"),
    Mutant("nms_zeroes_scores_on_a_copy", UT,
           find="    candidates = torch.nonzero(scores > threshold).flatten()\n",
           replace="    scores = scores.clone()\n    scores[scores <= threshold] = 0\n"
                   "    candidates = torch.nonzero(scores > threshold).flatten()\n",
           select="nms_matches", why="low scores zeroed in place on a copy"),
    Mutant("metric2_samples_recall_sklearn", T1, find=METRIC2, replace="""    import sklearn.metrics

    pred = (torch.as_tensor(output).cpu() > 0.5).to(torch.int64)
    return sklearn.metrics.recall_score(torch.as_tensor(target).cpu().to(torch.int64), pred, average='samples',
                                        zero_division=0)
""", select="metric2", why="recall averaged over images, threshold 0.5 on whatever train() passes"),
    Mutant("metric2_recall_on_logits", T1, find=METRIC2, replace="""    found = ((output > 0) & (target > 0)).sum().item()
    return [found / max((target > 0).sum().item(), 1)]
""", select="metric2", why="recall at logit 0 (probability 0.5), returned as [value] like the starter's stub"),
    Mutant("robust_average_pooling_head", AX, find=ROBUST_FORWARD, replace=ROBUST_FORWARD.replace(
        "        return self.classifier(self.features(x))\n",
        "        return torch.nn.functional.adaptive_avg_pool2d(self.classifier(self.features(x)), 1).flatten(1)\n"),
        select="robust_localizer_builds", why="the robust model averages its maps (Q1.7 leaves the fix open)"),
    # -- Task 2 ---------------------------------------------------------------------------------------
    Mutant("iou_two_boxes_python", UT, find=IOU, replace="""    x_left, y_top = max(box1[0], box2[0]), max(box1[1], box2[1])
    x_right, y_bottom = min(box1[2], box2[2]), min(box1[3], box2[3])
    if x_right < x_left or y_bottom < y_top:
        return 0.0
    intersection = (x_right - x_left) * (y_bottom - y_top)
    area1 = (box1[2] - box1[0]) * (box1[3] - box1[1])
    area2 = (box2[2] - box2[0]) * (box2[3] - box2[1])
    return intersection / (area1 + area2 - intersection)
""", select="iou", why="the starter's iou of two boxes, in plain Python"),
    Mutant("nms_python_lists", UT, find=NMS, replace="""    pairs = sorted([(s, b) for s, b in zip(confidence_score, bounding_boxes) if s > threshold],
                   key=lambda pair: float(pair[0]), reverse=True)
    boxes, scores = [], []
    for score, box in pairs:
        if all(float(_pairwise_iou(box.reshape(1, 4), kept.reshape(1, 4))) <= 0.3 for kept in boxes):
            boxes.append(box)
            scores.append(score)
    return boxes, scores
""", select="nms", why="lists of boxes and scores, as the starter's docstring says"),
    Mutant("wsddn_rois_list_normalised", WS, find=FORWARD, replace="""        from torchvision.ops import roi_pool

        features = self.features(image)
        boxes = [torch.as_tensor(r, dtype=image.dtype).reshape(-1, 4) * image.shape[-1] for r in rois]
        pooled = roi_pool(features, boxes, output_size=(6, 6), spatial_scale=31.0 / 512)
""", select="wsddn", why="rois given as [Tensor[K, 4]] in [0, 1], scaled in forward; scale = feature / image size"),
    Mutant("wsddn_build_loss_bceloss_squeeze", WS, find=BUILD_LOSS, replace="""        cls_prob = torch.clamp(torch.sum(cls_prob, dim=0), min=0.0, max=1.0)
        loss = nn.BCELoss(reduction="sum")(cls_prob, label_vec.squeeze().to(cls_prob))
""", select="build_loss or sets_loss", why="nn.BCELoss on the clamped region sums, labels squeezed"),
    Mutant("test_model_returns_ap_list", T2, find=TEST_MODEL_RETURN,
           replace="    return list(calculate_map(detections, ground_truths, num_classes=num_classes)[0])\n"
                   "    # END SOLUTION\n\n\ndef train_model(",
           select="test_model", why="returns the 20 class-wise APs (a list, NaN for absent classes)"),
]
