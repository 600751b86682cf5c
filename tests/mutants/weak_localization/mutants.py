"""Typical student bugs in weak_localization; each must lose points (tests/test_mutants.py).

The course profile's mutants change what F22 students write (the starter's TODOs); this project's helper
functions, exact metric definitions and speed checks are graded in profile ``extended``.
"""

from grader.mutation import Mutant

TRAIN_STEP = "        optimizer.zero_grad()\n        loss.backward()\n        optimizer.step()\n"
"""The reference train()'s optimizer step (issue 22's training-step mutants rearrange it)."""
LOCALIZER_INIT = ("        # BEGIN SOLUTION\n        self.features = _alexnet_features()\n        self.classifier = nn.Sequential(\n"
                  "            nn.Conv2d(256, 256, kernel_size=3),\n            nn.ReLU(inplace=True),\n"
                  "            nn.Conv2d(256, 256, kernel_size=1),")
"""The start of LocalizerAlexNet.__init__ (not of the robust model's, nor WSDDN's trunk)."""

MUTANTS = [
    # -- Task 0: proposals -------------------------------------------------------------------------
    Mutant("proposals_yx_order_kept", "voc_dataset.py",
           find="yxyx[:, [1, 0, 3, 2]]", replace="yxyx",
           select="proposals", why="returns the .mat's [y1, x1, y2, x2] as if it were [x1, y1, x2, y2]"),
    Mutant("proposals_lowest_scores", "voc_dataset.py",
           find="np.argsort(-scores, kind='stable')", replace="np.argsort(scores, kind='stable')",
           select="proposals", why="keeps the top_n proposals with the lowest boxScores"),
    Mutant("proposals_first_n", "voc_dataset.py",
           find="order = np.argsort(-scores, kind='stable')[:self.top_n]",
           replace="order = np.arange(len(scores))[:self.top_n]",
           select="proposals", why="takes the first top_n proposals of the file instead of the best scored"),
    Mutant("proposals_all", "voc_dataset.py",
           find="[:self.top_n]", replace="",
           select="proposals", why="ignores top_n"),
    Mutant("proposals_width_height_swapped", "voc_dataset.py",
           find="/ np.array([width, height, width, height])", replace="/ np.array([height, width, height, width])",
           select="proposals", why="divides x by the height and y by the width"),
    # -- Task 1: network, loss, metrics, heat maps --------------------------------------------------
    Mutant("localizer_padded_3x3", "AlexNet.py",
           find="self.classifier = nn.Sequential(\n            nn.Conv2d(256, 256, kernel_size=3),\n"
                "            nn.ReLU(inplace=True),\n            nn.Conv2d(256, 256, kernel_size=1),",
           replace="self.classifier = nn.Sequential(\n            nn.Conv2d(256, 256, kernel_size=3, padding=1),\n"
                   "            nn.ReLU(inplace=True),\n            nn.Conv2d(256, 256, kernel_size=1),",
           select="localizer_output_size", why="pads the classifier's 3x3 conv: 31x31 maps instead of 29x29"),
    Mutant("localizer_keeps_last_maxpool", "AlexNet.py",
           find="        nn.Conv2d(256, 256, kernel_size=3, padding=1),\n        nn.ReLU(inplace=True),\n    )",
           replace="        nn.Conv2d(256, 256, kernel_size=3, padding=1),\n        nn.ReLU(inplace=True),\n"
                   "        nn.MaxPool2d(kernel_size=3, stride=2),\n    )",
           select="localizer_output_size", why="keeps AlexNet's last max-pool in the trunk"),
    Mutant("average_pooling", "task_1.py",
           find="return output.amax(dim=(2, 3))", replace="return output.mean(dim=(2, 3))",
           select="loss_in_train or image_level_scores", why="global average instead of max pooling"),
    Mutant("loss_summed", "task_1.py",
           find="F.binary_cross_entropy_with_logits(image_level_scores(output), target.to(output.dtype))",
           replace="F.binary_cross_entropy_with_logits(image_level_scores(output), target.to(output.dtype), "
                   "reduction='sum')",
           select="localization_loss", profile="extended", why="sums the BCE instead of averaging it"),
    Mutant("classifier_not_xavier", "AlexNet.py",
           find="nn.init.xavier_uniform_(module.weight)", replace="nn.init.kaiming_uniform_(module.weight)",
           select="xavier", why="Kaiming instead of Xavier initialisation"),
    Mutant("loss_softmax_over_classes", "task_1.py",
           find="F.binary_cross_entropy_with_logits(image_level_scores(output), target.to(output.dtype))",
           replace="F.binary_cross_entropy(torch.softmax(image_level_scores(output), dim=1), target.to(output.dtype))",
           select="loss_in_train", why="a softmax over the classes (single-label) instead of a sigmoid per class"),
    Mutant("robust_not_pretrained", "AlexNet.py",
           find="    model = LocalizerAlexNetRobust(**kwargs)\n    # BEGIN SOLUTION\n    _init_weights(model, pretrained)",
           replace="    model = LocalizerAlexNetRobust(**kwargs)\n    # BEGIN SOLUTION\n    _init_weights(model, False)",
           select="robust_localizer_builds", why="the robust model ignores pretrained: its trunk starts from random"),
    Mutant("metric2_precision", "task_1.py",
           find="    found = int((labels & (scores >= threshold)).sum())\n    return found / positives\n",
           replace="    found = int((labels & (scores >= threshold)).sum())\n    predicted = int((scores >= threshold).sum())\n"
                   "    return found / predicted if predicted else 0.0\n",
           select="metric2", why="precision (found / predicted present) instead of recall (found / present)"),
    Mutant("pretrained_ignored", "AlexNet.py",
           find="model.features.load_state_dict({key: features[key] for key in own})",
           replace="model.features.load_state_dict(model.features.state_dict())",
           select="pretrained", why="reads the weights but never copies them into the model"),
    Mutant("metric1_counts_empty_classes", "task_1.py",
           find="return float(ap[valid].mean())", replace="return float(ap.mean())",
           select="metric1", why="averages AP over every class, counting classes without positives as 0"),
    Mutant("metric1_ignores_ties", "task_1.py",
           find="ap = (sorted_labels * precision.gather(0, end)).sum(dim=0)",
           replace="ap = (sorted_labels * precision).sum(dim=0)",
           select="metric1", profile="extended", why="ranks tied scores one by one (AP depends on the order of equal scores)"),
    Mutant("metric2_strict_threshold", "task_1.py",
           find="(scores >= threshold)", replace="(scores > threshold)",
           select="metric2", profile="extended", why="a probability of exactly 0.5 is not counted as found"),
    Mutant("metric2_is_precision", "task_1.py",
           find="return found / positives", replace="return found / max(int((scores >= threshold).sum()), 1)",
           select="metric2", profile="extended", why="precision instead of recall"),
    Mutant("heatmap_not_normalised", "task_1.py",
           find="return ((up - low) / (high - low)).to(torch.float32)", replace="return up.to(torch.float32)",
           select="upsample", profile="extended", why="returns raw scores instead of a [0, 1] heat map"),
    Mutant("heatmap_align_corners", "task_1.py",
           find="mode='bilinear', align_corners=False)", replace="mode='bilinear', align_corners=True)",
           select="upsample", profile="extended", why="bilinear with align_corners=True"),
    Mutant("heatmap_box_score_mean", "task_1.py",
           find="scores = reduce(values[rows, cols], 'amax', 0)", replace="scores = reduce(values[rows, cols], 'mean', 0)",
           select="boxes_from_heatmap", profile="extended", why="scores a box by its mean heat instead of its peak"),
    Mutant("heatmap_one_box", "task_1.py",
           find="which = components[rows, cols].long() - 1", replace="which = torch.zeros_like(rows)",
           select="boxes_from_heatmap", profile="extended", why="one box around every pixel above the threshold (blobs merged)"),
    Mutant("robust_without_dropout", "AlexNet.py",
           find="            nn.Dropout(p=dropout),\n            nn.Conv2d(256, 256, kernel_size=1),\n"
                "            nn.ReLU(inplace=True),\n            nn.Dropout(p=dropout),",
           replace="            nn.Identity(),\n            nn.Conv2d(256, 256, kernel_size=1),\n"
                   "            nn.ReLU(inplace=True),\n            nn.Identity(),",
           select="robust", profile="extended", why="the robust model is the plain one (no dropout)"),
    # -- Task 2: boxes, WSDDN, detection, AP -------------------------------------------------------
    Mutant("iou_no_clamp", "utils.py",
           find="width = (torch.minimum(boxes1[:, None, 2], boxes2[:, 2]) - torch.maximum(boxes1[:, None, 0], "
                "boxes2[:, 0])).clamp(min=0)",
           replace="width = (torch.minimum(boxes1[:, None, 2], boxes2[:, 2]) - torch.maximum(boxes1[:, None, 0], "
                   "boxes2[:, 0]))",
           select="iou", why="no clamp of the intersection width: boxes disjoint in x and y overlap"),
    Mutant("iou_union_keeps_intersection", "utils.py",
           find="union = (area1[:, None] + area2) - inter", replace="union = area1[:, None] + area2",
           select="iou", why="forgets to subtract the intersection from the union"),
    Mutant("iou_nan_for_empty", "utils.py",
           find="return torch.where(union > 0, inter / union, torch.zeros_like(inter))", replace="return inter / union",
           select="iou", profile="extended", why="0/0 = NaN for two empty boxes"),
    Mutant("nms_suppress_at_threshold", "utils.py",
           find="over = _pairwise_iou(ordered, ordered).to(torch.float64) > iou_threshold",
           replace="over = _pairwise_iou(ordered, ordered).to(torch.float64) >= iou_threshold",
           select="nms", profile="extended", why=">= instead of > at the IoU threshold"),
    Mutant("nms_score_threshold_inclusive", "utils.py",
           find="candidates = torch.nonzero(scores > threshold).flatten()",
           replace="candidates = torch.nonzero(scores >= threshold).flatten()",
           select="nms", profile="extended", why="keeps boxes whose score equals the confidence threshold"),
    Mutant("nms_ascending", "utils.py",
           find="order = torch.sort(scores, descending=True, stable=True).indices",
           replace="order = torch.sort(scores, descending=False, stable=True).indices",
           select="nms", why="visits the lowest score first"),
    Mutant("wsddn_softmax_axes_swapped", "wsddn.py",
           find="F.softmax(self.score_fc(hidden), dim=1) * F.softmax(self.bbox_fc(hidden), dim=0)",
           replace="F.softmax(self.score_fc(hidden), dim=0) * F.softmax(self.bbox_fc(hidden), dim=1)",
           select="wsddn", why="softmax over regions in the classification stream, over classes in the detection one"),
    Mutant("wsddn_both_softmax_over_classes", "wsddn.py",
           find="F.softmax(self.score_fc(hidden), dim=1) * F.softmax(self.bbox_fc(hidden), dim=0)",
           replace="F.softmax(self.score_fc(hidden), dim=1) * F.softmax(self.bbox_fc(hidden), dim=1)",
           select="wsddn", why="both streams normalised over classes"),
    Mutant("wsddn_loss_max_over_regions", "wsddn.py",
           find="image_scores = cls_prob.sum(dim=0).clamp(0.0, 1.0)",
           replace="image_scores = cls_prob.max(dim=0).values.clamp(0.0, 1.0)",
           select="wsddn", why="max instead of sum over regions for the image-level score"),
    Mutant("wsddn_roi_scale_one", "wsddn.py",
           find="RoIPool(output_size=(6, 6), spatial_scale=1.0 / 16)", replace="RoIPool(output_size=(6, 6), spatial_scale=1.0)",
           select="wsddn", why="RoI pooling with pixel boxes on the feature map without the 1/16 scale"),
    Mutant("detections_threshold_inclusive", "task_2.py",
           find="torch.nonzero(cls_prob > thresh, as_tuple=True)", replace="torch.nonzero(cls_prob >= thresh, as_tuple=True)",
           select="get_detections", profile="extended", why="keeps scores equal to the threshold"),
    Mutant("detections_nms_across_classes", "task_2.py",
           find="keep = _greedy_keep(boxes, scores, nms_threshold, labels=label)",
           replace="keep = _greedy_keep(boxes, scores, nms_threshold)",
           select="get_detections", profile="extended", why="boxes of different classes suppress each other"),
    Mutant("ap_duplicates_count", "task_2.py",
           find="tp = ((matched >= 0) & (first[slot] == position)).to(torch.float64)",
           replace="tp = (matched >= 0).to(torch.float64)",
           select="calculate_map", profile="extended", why="a second detection of an already matched box counts as a true positive"),
    Mutant("ap_not_interpolated", "task_2.py",
           find="scatter_add(0, labels, tp * envelope)", replace="scatter_add(0, labels, tp * precision)",
           select="calculate_map", profile="extended", why="uses the raw precision instead of the interpolated (envelope) precision"),
    Mutant("ap_ignores_class", "task_2.py",
           find="overlap = torch.where(labels[:, None] == gt_classes[None, :], overlap, -1.0)",
           replace="overlap = overlap",
           select="calculate_map", profile="extended", why="matches detections to ground-truth boxes of any class"),
    # (No "normalised rois into the network" mutant: the starter leaves WSDDN.forward's rois format to the
    # student, so test_model is graded with a stand-in network and forward by every reading it allows.)
    Mutant("test_model_fixed_threshold", "task_2.py",
           find="boxes, scores, labels = get_detections(cls_prob, rois, thresh, 0.3)",
           replace="boxes, scores, labels = get_detections(cls_prob, rois, 0.05, 0.3)",
           select="test_model", why="ignores the thresh argument"),
    # -- issue 22: bugs that shapes, counts and copied inputs did not show -----------------------------
    # Graded with the whole suite before issue 22's checks (b8a0aaf), every one of these 16 kept full marks
    # (ap_iou_strict lost only 0.94 of the nms speed check, timing noise under load 14); with them each loses
    # points in the whole suite (1-2 points, in the tests named by its select).
    # LocalizerAlexNet's values (test_localizer_score_values: given weights, 3 non-square images)
    Mutant("localizer_relu_on_scores", "AlexNet.py",
           find="            nn.ReLU(inplace=True),\n            nn.Conv2d(256, num_classes, kernel_size=1),\n        )\n"
                "        # END SOLUTION\n\n    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
                "        # BEGIN SOLUTION\n        return self.classifier(self.features(x))\n        # END SOLUTION\n\n\n"
                "class LocalizerAlexNetRobust",
           replace="            nn.ReLU(inplace=True),\n            nn.Conv2d(256, num_classes, kernel_size=1),\n"
                   "            nn.ReLU(inplace=True),\n        )\n"
                   "        # END SOLUTION\n\n    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
                   "        # BEGIN SOLUTION\n        return self.classifier(self.features(x))\n        # END SOLUTION\n\n\n"
                   "class LocalizerAlexNetRobust",
           select="score_values", why="a ReLU after the last conv: scores are never negative (same shapes and counts)"),
    Mutant("localizer_classifier_relu_missing", "AlexNet.py",
           find="            nn.Conv2d(256, 256, kernel_size=1),\n            nn.ReLU(inplace=True),\n"
                "            nn.Conv2d(256, num_classes, kernel_size=1),\n        )",
           replace="            nn.Conv2d(256, 256, kernel_size=1),\n"
                   "            nn.Conv2d(256, num_classes, kernel_size=1),\n        )",
           select="score_values", why="no ReLU between the two 1x1 convs of the classifier (same parameters)"),
    # (LocalizerAlexNet's own trunk: the reference's WSDDN shares _alexnet_features, a student's has its own copy)
    Mutant("localizer_conv5_without_relu", "AlexNet.py",
           find=LOCALIZER_INIT,
           replace="        # BEGIN SOLUTION\n        self.features = nn.Sequential(*list(_alexnet_features())[:-1])\n"
                   "        self.classifier = nn.Sequential(\n"
                   "            nn.Conv2d(256, 256, kernel_size=3),\n            nn.ReLU(inplace=True),\n"
                   "            nn.Conv2d(256, 256, kernel_size=1),",
           select="score_values", why="the localizer's trunk stops at conv5 without its ReLU (weights still load by name)"),
    Mutant("localizer_maxpool_2x2", "AlexNet.py",
           find=LOCALIZER_INIT,
           replace="        # BEGIN SOLUTION\n        self.features = _alexnet_features()\n"
                   "        self.features[5] = nn.MaxPool2d(kernel_size=2, stride=2)\n"
                   "        self.classifier = nn.Sequential(\n"
                   "            nn.Conv2d(256, 256, kernel_size=3),\n            nn.ReLU(inplace=True),\n"
                   "            nn.Conv2d(256, 256, kernel_size=1),",
           select="score_values", why="max-pool 2x2/2 after conv2 instead of AlexNet's 3x3/2: same map sizes at 512 "
                                     "and 224, other values"),
    # Task 1's training step (test_train_steps_on_each_batch: an optimizer that notes the gradient at each step)
    Mutant("train_no_zero_grad", "task_1.py",
           find=TRAIN_STEP,
           replace="        loss.backward()\n        optimizer.step()\n",
           select="steps_on_each_batch", why="never zeroes the gradients: every step uses the sum over all batches so far"),
    Mutant("train_step_before_backward", "task_1.py",
           find=TRAIN_STEP,
           replace="        optimizer.zero_grad()\n        optimizer.step()\n        loss.backward()\n",
           select="steps_on_each_batch", why="optimizer.step() before loss.backward(): each step uses no gradient"),
    Mutant("train_zero_grad_before_step", "task_1.py",
           find=TRAIN_STEP,
           replace="        loss.backward()\n        optimizer.zero_grad()\n        optimizer.step()\n",
           select="steps_on_each_batch", why="zero_grad between backward and step: the step sees zero gradients"),
    Mutant("train_no_optimizer_step", "task_1.py",
           find=TRAIN_STEP,
           replace="        optimizer.zero_grad()\n        loss.backward()\n",
           select="steps_on_each_batch", why="computes the gradients but never steps the optimizer"),
    # Inputs changed in place (call_keeping_inputs; results right)
    Mutant("metric1_sigmoid_in_place", "task_1.py",
           find="    scores = torch.as_tensor(output).detach().to(torch.float64).cpu()\n",
           replace="    scores = torch.as_tensor(output).detach().sigmoid_().to(torch.float64).cpu()\n",
           select="metric1_is_map", why="sigmoid_ on the caller's tensor (AP is unchanged, but train() then passes "
                                       "the squashed imoutput.data to metric2)"),
    Mutant("metric2_marks_predictions_in_place", "task_1.py",
           find="    labels = torch.as_tensor(target).detach().cpu() > 0.5\n",
           replace="    labels = torch.as_tensor(target).detach().cpu() > 0.5\n    scores[scores >= threshold] = 1.0\n",
           select="metric2_is_a_recall", why="writes 1 into the caller's scores above the threshold (.detach() shares memory)"),
    Mutant("nms_zeroes_low_scores_in_place", "utils.py",
           find="    candidates = torch.nonzero(scores > threshold).flatten()\n",
           replace="    scores[scores <= threshold] = 0\n    candidates = torch.nonzero(scores > threshold).flatten()\n",
           select="nms_matches", why="zeroes the caller's confidence scores below the threshold"),
    Mutant("detections_zero_low_scores_in_place", "task_2.py",
           find="    cls_prob = cls_prob.detach()\n",
           replace="    cls_prob = cls_prob.detach()\n    cls_prob[cls_prob <= thresh] = 0\n",
           select="get_detections_hand", profile="extended", why="zeroes the caller's cls_prob below the threshold"),
    Mutant("heatmap_shifted_in_place", "task_1.py",
           find="    values = score_map.detach().to(torch.float64)\n",
           replace="    score_map = score_map.detach()\n    score_map -= score_map.min()\n"
                   "    values = score_map.to(torch.float64)\n",
           select="upsample_heatmap", profile="extended", why="subtracts the minimum from the caller's score map in place"),
    Mutant("heatmap_background_zeroed_in_place", "task_1.py",
           find="    values = heatmap.detach().cpu().float()\n",
           replace="    values = heatmap.detach().cpu().float()\n    values[values < threshold] = 0\n",
           select="several_blobs", profile="extended", why="zeroes the caller's heat map below the threshold"),
    # Boundaries the docstrings fix
    Mutant("ap_iou_strict", "task_2.py",
           find="match = torch.where(best >= iou_threshold, which + gt_offset, match)",
           replace="match = torch.where(best > iou_threshold, which + gt_offset, match)",
           select="calculate_map_hand", profile="extended", why="IoU exactly 0.5 is not a match (the docstring: >=)"),
    Mutant("heatmap_threshold_strict", "task_1.py",
           find="(values >= threshold).numpy()", replace="(values > threshold).numpy()",
           select="several_blobs", profile="extended", why="pixels exactly at the threshold are background (docstring: >=)"),
    # -- per-element Python loops (correct results; caught by the hidden speed tests) ---------------
    Mutant("nms_pairwise_python_loop", "utils.py",
           find="    keep = candidates[_greedy_keep(boxes[candidates], scores[candidates], iou_threshold)]\n",
           replace="""    order = candidates[torch.sort(scores[candidates], descending=True, stable=True).indices]
    kept = []
    for i in order.tolist():
        if all(float(iou(boxes[i], boxes[j])) <= iou_threshold for j in kept):
            kept.append(i)
    keep = torch.tensor(kept, dtype=torch.long, device=boxes.device)
""",
           select="speed and nms", profile="extended", why="IoU of one pair of boxes at a time in a double Python loop"),
    Mutant("map_per_detection_loop", "task_2.py",
           find="""        if boxes.shape[0] and gt_boxes.shape[0]:
            overlap = _pairwise_iou(boxes, gt_boxes)
            overlap = torch.where(labels[:, None] == gt_classes[None, :], overlap, -1.0)
            best, which = overlap.max(dim=1)
            match = torch.where(best >= iou_threshold, which + gt_offset, match)
""",
           replace="""        for d in range(boxes.shape[0]):
            best, which = -1.0, -1
            for g in range(gt_boxes.shape[0]):
                if int(gt_classes[g]) == int(labels[d]):
                    value = float(_pairwise_iou(boxes[d:d + 1], gt_boxes[g:g + 1])[0, 0])
                    if value > best:
                        best, which = value, g
            if which >= 0 and best >= iou_threshold:
                match[d] = which + gt_offset
""",
           select="speed and map", profile="extended", why="one Python iteration per (detection, ground-truth box) pair"),
    Mutant("wsddn_per_region_loop", "wsddn.py",
           find="""        pooled = self.roi_pool(features, [boxes])
        hidden = self.classifier(pooled.flatten(start_dim=1))
""",
           replace="""        hidden = torch.cat([self.classifier(self.roi_pool(features, [boxes[k:k + 1]]).flatten(start_dim=1))
                            for k in range(boxes.shape[0])])
""",
           select="speed and wsddn", profile="extended", why="pools and classifies one region at a time"),
]
