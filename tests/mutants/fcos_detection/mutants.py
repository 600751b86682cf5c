"""Typical student bugs in fcos_detection; each must lose points (tests/test_mutants.py).

The GT matching and ``class_spec_nms`` are the course's provided code: no mutant of theirs (no test
grades them). Bugs in ``box_iou``, ``nms`` and ``compute_map`` are graded in the ``extended`` profile.
"""

from grader.mutation import Mutant

DU = "detection_utils.py"
OSD = "one_stage_detector.py"
CENTERNESS_RETURN = "return ratio.sqrt().masked_fill(background, -1)"
# The vectorized TP / FP assignment of compute_map (replaced by a loop in map_per_detection_loop).
MAP_MATCHING = """    # Every (detection, GT box of the same image and class) pair, without an N x M matrix.
    gt_key = gt_image * num_classes + gt_class
    gt_order = torch.sort(gt_key, stable=True).indices
    det_key = det_image * num_classes + det_class
    first = torch.searchsorted(gt_key[gt_order], det_key, right=False)
    last = torch.searchsorted(gt_key[gt_order], det_key, right=True)
    counts = last - first
    pair_det = torch.repeat_interleave(torch.arange(num_det), counts)
    offsets = torch.arange(pair_det.numel()) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    pair_gt = gt_order[first[pair_det] + offsets]
    a, b = det[pair_det, :4], gt[pair_gt, :4]
    inter = ((torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
             * (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0))
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    iou = inter / union

    # Best box of each detection: highest IoU, first in annotation order on ties.
    best_iou = torch.full((num_det,), -math.inf, dtype=torch.float64).scatter_reduce(
        0, pair_det, iou, reduce="amax", include_self=True)
    is_best = iou == best_iou[pair_det]
    pair_index = torch.arange(pair_det.numel())
    best_pair = torch.full((num_det,), pair_det.numel(), dtype=torch.long).scatter_reduce(
        0, pair_det[is_best], pair_index[is_best], reduce="amin", include_self=True)
    # best_gt: index of the best box, or M (one past the last box) for detections without any.
    has_box = counts > 0
    best_gt = torch.full((num_det,), gt.shape[0], dtype=torch.long)
    best_gt[has_box] = pair_gt[best_pair[has_box]]

    hit = has_box & (best_iou >= iou_threshold)
    ignored = hit & torch.cat([gt_difficult, gt_difficult.new_zeros(1)])[best_gt]
    claims = hit & ~ignored
    # The first (highest-scored) detection that claims a box is a TP; later ones are duplicates.
    det_rank = torch.arange(num_det)
    first_claim = torch.full((gt.shape[0] + 1,), num_det, dtype=torch.long).scatter_reduce(
        0, best_gt[claims], det_rank[claims], reduce="amin", include_self=True)
    tp = claims & (first_claim[best_gt] == det_rank)
"""
STEM_CLS = "stem_cls += [nn.Conv2d(previous, channels, kernel_size=3, padding=1), nn.ReLU()]"

MUTANTS = [
    # --- FPN locations -------------------------------------------------------------------------
    Mutant("loc_no_half_offset", DU,
           find="xs = (torch.arange(width, dtype=dtype, device=device) + 0.5) * level_stride",
           replace="xs = torch.arange(width, dtype=dtype, device=device) * level_stride",
           select="location_coords", why="x centres at stride * j instead of stride * (j + 0.5)"),
    Mutant("loc_height_width_swapped", DU,
           find="height, width = int(feat_shape[-2]), int(feat_shape[-1])",
           replace="width, height = int(feat_shape[-2]), int(feat_shape[-1])",
           select="location_coords", why="reads (B, C, W, H): wrong for non-square maps", profile="extended"),
    Mutant("loc_ignores_dtype", DU,
           find="location_coords[level_name] = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)",
           replace="location_coords[level_name] = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1).float()",
           select="location_coords", why="always float32, whatever dtype was asked for"),
    # --- deltas and centerness ----------------------------------------------------------------
    Mutant("deltas_not_normalised", DU,
           find="gt_boxes[:, 2:4] - locations], dim=1) / stride",
           replace="gt_boxes[:, 2:4] - locations], dim=1)",
           select="deltas or centerness", why="forgot to divide by the stride"),
    Mutant("deltas_rblt_order", DU,
           find="torch.cat([locations - gt_boxes[:, :2], gt_boxes[:, 2:4] - locations], dim=1)",
           replace="torch.cat([gt_boxes[:, 2:4] - locations, locations - gt_boxes[:, :2]], dim=1)",
           select="deltas", why="(r, b, l, t) instead of (l, t, r, b)"),
    Mutant("deltas_background_from_class_column", DU,
           find="background = (gt_boxes[:, :4] == -1).all(dim=1)",
           replace="background = gt_boxes[:, 4] == -1",
           select="deltas", why="needs the class column: fails for (N, 4) boxes"),
    Mutant("apply_no_clamp", DU,
           find="distances = deltas.clamp(min=0) * stride",
           replace="distances = deltas * stride",
           select="apply_deltas or deltas_random", why="negative deltas not clamped to 0"),
    Mutant("apply_no_stride", DU,
           find="distances = deltas.clamp(min=0) * stride",
           replace="distances = deltas.clamp(min=0)",
           select="apply_deltas or deltas_random", why="deltas not multiplied back by the stride"),
    Mutant("centerness_no_sqrt", DU, find=CENTERNESS_RETURN,
           replace="return ratio.masked_fill(background, -1)",
           select="centerness", why="forgot the square root"),
    Mutant("centerness_background_zero", DU, find=CENTERNESS_RETURN,
           replace="return ratio.sqrt().masked_fill(background, 0)",
           select="centerness", why="background centerness 0 instead of -1"),
    Mutant("centerness_pairs_mixed", DU,
           find="torch.minimum(left, right) * torch.minimum(top, bottom)",
           replace="torch.minimum(left, top) * torch.minimum(right, bottom)",
           select="centerness", why="pairs l with t instead of l with r"),
    # --- IoU and NMS --------------------------------------------------------------------------------
    Mutant("iou_no_clamp", DU,
           find="inter = width.clamp(min=0) * height.clamp(min=0)",
           replace="inter = width * height",
           select="box_iou", why="IoU without clamping negative overlaps (disjoint boxes get IoU > 0)", profile="extended"),
    Mutant("iou_union_wrong", DU,
           find="return inter / ((area1[:, None] + area2) - inter)",
           replace="return inter / (area1[:, None] + area2)",
           select="box_iou", why="forgot to subtract the intersection from the union", profile="extended"),
    Mutant("nms_ge_threshold", DU,
           find="return iou >= value if inclusive else iou > value",
           replace="return iou >= value",
           select="nms", why=">= instead of > at the IoU threshold", profile="extended"),
    Mutant("nms_unstable_sort", DU,
           find="order = torch.sort(scores, descending=True, stable=True).indices",
           replace="order = torch.sort(scores, stable=True).indices.flip(0)",
           select="nms", why="sorts ascending and flips: equal scores visited in reverse index order", profile="extended"),
    Mutant("nms_ascending", DU,
           find="order = torch.sort(scores, descending=True, stable=True).indices",
           replace="order = torch.sort(scores, descending=False, stable=True).indices",
           select="nms", why="visits the lowest score first", profile="extended"),
    # --- mAP ------------------------------------------------------------------------------------------
    Mutant("map_difficult_not_ignored", DU,
           find="ignored = hit & torch.cat([gt_difficult, gt_difficult.new_zeros(1)])[best_gt]",
           replace="ignored = hit & torch.zeros_like(hit)",
           select="map", why="hits on difficult boxes count as true positives", profile="extended"),
    Mutant("map_duplicates_are_tp", DU,
           find="tp = claims & (first_claim[best_gt] == det_rank)",
           replace="tp = claims",
           select="map", why="a second detection of the same box counts as another TP", profile="extended"),
    Mutant("map_npos_counts_difficult", DU,
           find="npos = torch.bincount(gt_class[~gt_difficult], minlength=num_classes)[:num_classes]",
           replace="npos = torch.bincount(gt_class, minlength=num_classes)[:num_classes]",
           select="map", why="difficult boxes counted in the recall's denominator", profile="extended"),
    Mutant("map_no_envelope", DU,
           find="envelope = torch.cummax((precision + lift).flip(0), dim=0).values.flip(0) - lift",
           replace="envelope = precision",
           select="map", why="raw precision instead of the interpolated (monotone) envelope", profile="extended"),
    Mutant("map_07_strict_recall", DU,
           find="reached = cum_tp[:, None] * 10 >= steps * npos_det[:, None]",
           replace="reached = cum_tp[:, None] * 10 > steps * npos_det[:, None]",
           select="map", why="11-point AP takes recall > t instead of recall >= t", profile="extended"),
    Mutant("map_mean_counts_missing_classes", DU,
           find="mean_ap = float(ap[valid].mean()) if bool(valid.any()) else math.nan",
           replace="mean_ap = float(torch.nan_to_num(ap).mean())",
           select="map", why="classes without ground truth count as AP 0 in the mean", profile="extended"),
    # --- FPN and head ---------------------------------------------------------------------------------
    Mutant("fpn_no_top_down", OSD,
           find='merged = lateral + F.interpolate(merged, size=lateral.shape[-2:], mode="nearest")',
           replace="merged = lateral",
           select="fpn_values", why="no top-down pathway: coarse levels are not added to finer ones"),
    Mutant("fpn_skips_output_conv", OSD,
           find='fpn_feats[level] = self.fpn_params[f"output_{level}"](merged)',
           replace="fpn_feats[level] = merged",
           select="fpn_values or end_to_end", why="p3/p4 skip their 3x3 output convs"),
    Mutant("fpn_output_conv_unpadded", OSD,
           find="self.fpn_params[f\"output_{level}\"] = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)",
           replace="self.fpn_params[f\"output_{level}\"] = nn.Conv2d(out_channels, out_channels, kernel_size=3)",
           select="backbone_fpn", why="3x3 output convs without padding shrink the maps"),
    Mutant("head_ctr_from_cls_stem", OSD,
           find="centerness_logits[level_name] = self.pred_ctr(box_feats).flatten(2).transpose(1, 2)",
           replace="centerness_logits[level_name] = self.pred_ctr(self.stem_cls(feats)).flatten(2).transpose(1, 2)",
           select="prediction_network", why="centerness from the class stem (the original FCOS, not this handout)"),
    Mutant("head_reshape_without_permute", OSD,
           find="class_logits[level_name] = self.pred_cls(self.stem_cls(feats)).flatten(2).transpose(1, 2)",
           replace="class_logits[level_name] = self.pred_cls(self.stem_cls(feats)).reshape(feats.shape[0], -1, "
                   "self.pred_cls.out_channels)",
           select="prediction_network", why="reshapes (B, C, H, W) to (B, H*W, C) without moving channels last"),
    Mutant("head_no_relu", OSD, find=STEM_CLS,
           replace="stem_cls += [nn.Conv2d(previous, channels, kernel_size=3, padding=1)]",
           select="prediction_network", why="no ReLU between the class stem's convs"),
    # --- losses -------------------------------------------------------------------------------------------
    Mutant("loss_background_as_class_zero", OSD,
           find="one_hot = F.one_hot(gt_classes + 1, self.num_classes + 1)[:, :, 1:].to(pred_cls_logits.dtype)",
           replace="one_hot = F.one_hot(gt_classes.clamp(min=0), self.num_classes).to(pred_cls_logits.dtype)",
           select="losses", why="background locations get class 0 as their focal-loss target"),
    Mutant("loss_box_background_not_masked", OSD,
           find="loss_box = loss_box * foreground[:, :, None]",
           replace="loss_box = loss_box",
           select="losses", why="box loss also at background locations (targets -1)"),
    Mutant("loss_ctr_background_not_masked", OSD,
           find="loss_ctr = loss_ctr * foreground",
           replace="loss_ctr = loss_ctr",
           select="losses", why="centerness loss also at background locations"),
    Mutant("loss_box_no_quarter", OSD,
           find="loss_box = 0.25 * F.l1_loss(",
           replace="loss_box = F.l1_loss(",
           select="losses", why="forgot the 0.25 that averages the four LTRB terms"),
    Mutant("loss_ctr_targets_from_predictions", OSD,
           find="gt_centerness = fcos_make_centerness_targets(matched_gt_deltas.reshape(-1, 4))",
           replace="gt_centerness = fcos_make_centerness_targets(pred_boxreg_deltas.detach().reshape(-1, 4))",
           select="losses", why="centerness targets from the predicted deltas instead of the GT deltas"),
    Mutant("loss_deltas_fixed_stride", OSD,
           find="level_boxes,\n                                                           strides[level_name])",
           replace="level_boxes,\n                                                           8)",
           select="losses", why="GT deltas of every level normalised by stride 8"),
    # --- inference -----------------------------------------------------------------------------------------
    Mutant("inference_no_clipping", OSD,
           find="""            level_pred_boxes = torch.stack([
                level_pred_boxes[:, 0].clamp(0, width), level_pred_boxes[:, 1].clamp(0, height),
                level_pred_boxes[:, 2].clamp(0, width), level_pred_boxes[:, 3].clamp(0, height),
            ], dim=1)""",
           replace="",
           select="inference_hand_made or eval_forward", why="boxes not clipped to the image"),
    Mutant("inference_clip_width_height_swapped", OSD,
           find="level_pred_boxes[:, 0].clamp(0, width), level_pred_boxes[:, 1].clamp(0, height),",
           replace="level_pred_boxes[:, 0].clamp(0, height), level_pred_boxes[:, 1].clamp(0, width),",
           select="inference_hand_made", why="x clipped to the height and y to the width", profile="extended"),
    Mutant("inference_fixed_stride", OSD,
           find="stride = self.backbone.fpn_strides[level_name]",
           replace="stride = 8",
           select="inference_hand_made", why="every level decoded with stride 8"),
    # --- issue 22: bugs the suite could not see (in-place changes of inputs, boundaries, other sizes) ----
    Mutant("apply_deltas_clamp_in_place", DU,
           find="distances = deltas.clamp(min=0) * stride",
           replace="distances = deltas.clamp_(min=0) * stride",
           select="apply_deltas or deltas_random",
           why="clamp_ clamps the caller's deltas in place (the boxes are right; the head's predictions change)"),
    Mutant("deltas_written_into_gt_boxes", DU,
           find="""    deltas = torch.cat([locations - gt_boxes[:, :2], gt_boxes[:, 2:4] - locations], dim=1) / stride
    background = (gt_boxes[:, :4] == -1).all(dim=1)
    return deltas.masked_fill(background[:, None], -1)
""",
           replace="""    deltas = gt_boxes[:, :4]
    background = (deltas == -1).all(dim=1)
    deltas[:, :2] = (locations - deltas[:, :2]) / stride
    deltas[:, 2:] = (deltas[:, 2:] - locations) / stride
    deltas[background] = -1
    return deltas
""",
           select="deltas_golden or deltas_random",
           why="deltas computed in a view of gt_boxes: right values, but the caller's boxes are overwritten"),
    Mutant("centerness_clamps_deltas_in_place", DU,
           find="""    left, top, right, bottom = deltas.unbind(dim=1)
    ratio = (torch.minimum(left, right) * torch.minimum(top, bottom)) / (
        torch.maximum(left, right) * torch.maximum(top, bottom))
    background = (deltas == -1).all(dim=1)
""",
           replace="""    background = (deltas == -1).all(dim=1)
    left, top, right, bottom = deltas.clamp_(min=1e-6).unbind(dim=1)
    ratio = (torch.minimum(left, right) * torch.minimum(top, bottom)) / (
        torch.maximum(left, right) * torch.maximum(top, bottom))
""",
           select="centerness",
           why="guards the division with clamp_ on the caller's deltas (background rows become 1e-6 there)"),
    Mutant("loss_strides_from_image_size", OSD,
           find="        strides = self.backbone.fpn_strides\n",
           replace="        strides = {level: images.shape[-1] // feats.shape[-1] for level, feats in backbone_feats.items()}\n",
           select="losses_other_sizes",
           why="strides as image side // map side: right only when the side is a multiple of 32"),
    Mutant("apply_deltas_zeroed_in_place", DU,
           find="distances = deltas.clamp(min=0) * stride",
           replace="deltas[deltas < 0] = 0\n    distances = deltas * stride",
           select="apply_deltas or deltas_random",
           why="zeroes negative deltas with a masked assignment on the caller's tensor (the boxes are right)"),
    Mutant("loss_matching_squeezes_batch", OSD,
           find="        for boxes in gt_boxes:\n",
           replace="        for boxes in gt_boxes.squeeze():\n",
           select="losses_other_sizes",
           why="squeezes gt_boxes before the per-image loop: with one image in the batch it loops over its boxes"),
    Mutant("map_iou_strictly_above_threshold", DU,
           find="hit = has_box & (best_iou >= iou_threshold)",
           replace="hit = has_box & (best_iou > iou_threshold)",
           select="map_iou_equal_to_threshold",
           why="a detection with IoU exactly at the threshold is a FP (the docstring: >= iou_threshold)",
           profile="extended"),
    Mutant("nms_marks_scores_in_place", DU,
           find="    return _greedy_nms(boxes, scores, iou_threshold)\n",
           replace="""    keep = []
    while boxes.numel() and bool(torch.isfinite(scores).any()):
        best = int(torch.argmax(scores))  # the first of equal scores
        if scores[best] == -math.inf:
            break
        keep.append(best)
        scores[box_iou(boxes[best:best + 1], boxes)[0] > iou_threshold] = -math.inf
        scores[best] = -math.inf
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)
""",
           select="nms and not speed",
           why="greedy NMS that marks visited and suppressed boxes by overwriting the caller's scores with -inf",
           profile="extended"),
    # --- per-element Python loops (correct results; caught by the hidden speed tests) ----------------
    Mutant("nms_pairwise_python_loop", DU,
           find="    return _greedy_nms(boxes, scores, iou_threshold)\n",
           replace="""    order = torch.sort(scores, descending=True, stable=True).indices
    keep = []
    for i in order.tolist():
        if all(box_iou(boxes[i:i + 1], boxes[j:j + 1])[0, 0] <= iou_threshold for j in keep):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)
""",
           select="speed and nms", why="IoU of one pair of boxes at a time in a double Python loop", profile="extended"),
    Mutant("deltas_per_row_loop", DU,
           find="""    deltas = torch.cat([locations - gt_boxes[:, :2], gt_boxes[:, 2:4] - locations], dim=1) / stride
    background = (gt_boxes[:, :4] == -1).all(dim=1)
    return deltas.masked_fill(background[:, None], -1)
""",
           replace="""    deltas = locations.new_empty(locations.shape[0], 4)
    for k in range(locations.shape[0]):
        if bool((gt_boxes[k, :4] == -1).all()):
            deltas[k] = -1
        else:
            deltas[k] = torch.cat([locations[k] - gt_boxes[k, :2], gt_boxes[k, 2:4] - locations[k]]) / stride
    return deltas
""",
           select="speed and deltas", why="one Python iteration per location", profile="extended"),
    Mutant("centerness_per_row_loop", DU,
           find="""    left, top, right, bottom = deltas.unbind(dim=1)
    ratio = (torch.minimum(left, right) * torch.minimum(top, bottom)) / (
        torch.maximum(left, right) * torch.maximum(top, bottom))
    background = (deltas == -1).all(dim=1)
    return ratio.sqrt().masked_fill(background, -1)
""",
           replace="""    out = deltas.new_empty(deltas.shape[0])
    for k in range(deltas.shape[0]):
        left, top, right, bottom = deltas[k]
        if bool((deltas[k] == -1).all()):
            out[k] = -1
        else:
            out[k] = ((torch.minimum(left, right) * torch.minimum(top, bottom))
                      / (torch.maximum(left, right) * torch.maximum(top, bottom))).sqrt()
    return out
""",
           select="speed and centerness", why="one Python iteration per location", profile="extended"),
    Mutant("map_per_detection_loop", DU,
           find=MAP_MATCHING,
           replace="""    ignored = torch.zeros(num_det, dtype=torch.bool)
    tp = torch.zeros(num_det, dtype=torch.bool)
    claimed = torch.zeros(gt.shape[0], dtype=torch.bool)
    for d in range(num_det):
        same = ((gt_image == det_image[d]) & (gt_class == det_class[d])).nonzero().flatten()
        if same.numel() == 0:
            continue
        a, b = det[d, :4], gt[same, :4]
        inter = ((torch.minimum(a[2], b[:, 2]) - torch.maximum(a[0], b[:, 0])).clamp(min=0)
                 * (torch.minimum(a[3], b[:, 3]) - torch.maximum(a[1], b[:, 1])).clamp(min=0))
        iou = inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)
        best = int(iou.argmax())
        if iou[best] < iou_threshold:
            continue
        g = int(same[best])
        if gt_difficult[g]:
            ignored[d] = True
        elif not claimed[g]:
            claimed[g] = True
            tp[d] = True
""",
           select="speed and map", why="one Python iteration per detection (the devkit's loop)", profile="extended"),
]
