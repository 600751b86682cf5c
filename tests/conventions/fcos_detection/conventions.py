"""Right answers written the way real 16-824 students write them; each must keep full marks
(tests/test_course_conventions.py). They are rewrites of the reference by the project, not students' code."""

from grader.mutation import Mutant

OSD = "one_stage_detector.py"
DU = "detection_utils.py"
REFERENCE_IMPORTS = """from detection_utils import (
    TensorDict,
    class_spec_nms,
    fcos_apply_deltas_to_locations,
    fcos_get_deltas_from_locations,
    fcos_make_centerness_targets,
    fcos_match_locations_to_gt,
    get_fpn_location_coords,
)
"""
REFERENCE_MATCH_TIE_BREAK = """        cost = torch.where(candidate, areas.to(dist.dtype), torch.full_like(reach, math.inf))
        best_cost, best = cost.min(dim=1)
        matched = gt_boxes[best]
        matched[torch.isinf(best_cost)] = -1
"""
REFERENCE_FPN = """        merged = self.fpn_params["lateral_c5"](backbone_feats["c5"])
        fpn_feats["p5"] = self.fpn_params["output_p5"](merged)
        for name, level in (("c4", "p4"), ("c3", "p3")):
            lateral = self.fpn_params[f"lateral_{name}"](backbone_feats[name])
            merged = lateral + F.interpolate(merged, size=lateral.shape[-2:], mode="nearest")
            fpn_feats[level] = self.fpn_params[f"output_{level}"](merged)
"""

CONVENTIONS = [
    # The starter's hint "use F.interpolate to upsample FPN features" read as: upsample the coarser
    # level's *output* map, by a scale factor of 2 (as two public S24 solutions do).
    Mutant("fpn_upsamples_output_maps", OSD, find=REFERENCE_FPN, replace="""        c3 = self.fpn_params["lateral_c3"](backbone_feats["c3"])
        c4 = self.fpn_params["lateral_c4"](backbone_feats["c4"])
        c5 = self.fpn_params["lateral_c5"](backbone_feats["c5"])
        p5 = self.fpn_params["output_p5"](c5)
        p4 = self.fpn_params["output_p4"](c4 + F.interpolate(p5, scale_factor=2, mode="nearest"))
        p3 = self.fpn_params["output_p3"](c3 + F.interpolate(p4, scale_factor=2, mode="nearest"))
        fpn_feats = {"p3": p3, "p4": p4, "p5": p5}
""", select="fpn_values or backbone_fpn", why="the other reading of the starter's FPN hint"),
    Mutant("fpn_bilinear_upsampling", OSD, find='mode="nearest")', replace='mode="bilinear", align_corners=False)',
           select="fpn_values or backbone_fpn", why="the hint names F.interpolate, not its mode"),
    # The starter's own import line: everything of detection_utils, by *.
    Mutant("starter_star_import", OSD, find=REFERENCE_IMPORTS, replace="from detection_utils import *\n",
           select="", why="the starter's `from detection_utils import *`"),
    # 16-824 ran on GPUs: solutions move tensors with .cuda() (run on the CPU here, manifest cuda_on_cpu).
    Mutant("hard_coded_cuda_calls", OSD,
           find="matched = fcos_match_locations_to_gt(locations_per_fpn_level, strides, boxes)",
           replace="matched = fcos_match_locations_to_gt(locations_per_fpn_level, strides, boxes.cuda())",
           select="losses or end_to_end", why="a .cuda() call written for the course's GPUs"),
    # The provided matching as the course writes it: a float32 quality 1e8 - area, the largest quality wins.
    Mutant("course_style_matching", DU, find=REFERENCE_MATCH_TIE_BREAK, replace="""        quality = candidate.to(torch.float32) * (1e8 - areas.to(torch.float32))
        best_quality, best = quality.max(dim=1)
        matched = gt_boxes[best]
        matched[best_quality < 1e-5] = -1
""", select="losses or end_to_end", why="the course's own (provided) matching code style"),
    Mutant("score_threshold_inclusive", OSD, find="keep = level_pred_scores > test_score_thresh",
           replace="keep = level_pred_scores >= test_score_thresh", select="inference or eval_forward",
           why="'higher than the threshold' read as >= (no graded score sits on the threshold)"),
    Mutant("inference_hard_coded_strides", OSD, find="stride = self.backbone.fpn_strides[level_name]",
           replace='stride = {"p3": 8, "p4": 16, "p5": 32}[level_name]', select="inference or eval_forward",
           why="the strides written out instead of read from the backbone"),
    # Script-style leftovers: code at the top level that tries things out, and fails where grading runs
    # (no data there); the manifest's definitions_on_import_error grades the definitions all the same.
    Mutant("script_style_leftovers", OSD, find="from torch.utils.data._utils.collate import default_collate\n",
           replace="""from torch.utils.data._utils.collate import default_collate
from detection_helper import VOC2007DetectionTiny

train_dataset = VOC2007DetectionTiny("./data", split="train")  # tried out while writing the model
print(len(train_dataset))
""", select="", why="top-level statements left in the student's file that raise at import"),
    Mutant("main_block_checks", "detection_utils.py", find="def box_iou(", replace="""if __name__ == "__main__":
    print(get_fpn_location_coords({"p3": (1, 1, 2, 2)}, {"p3": 8}))


def box_iou(""", select="location_coords", why="a __main__ block of quick checks"),
    Mutant("clip_to_last_pixel", OSD, find="""                level_pred_boxes[:, 0].clamp(0, width), level_pred_boxes[:, 1].clamp(0, height),
                level_pred_boxes[:, 2].clamp(0, width), level_pred_boxes[:, 3].clamp(0, height),""",
           replace="""                level_pred_boxes[:, 0].clamp(0, width - 1), level_pred_boxes[:, 1].clamp(0, height - 1),
                level_pred_boxes[:, 2].clamp(0, width - 1), level_pred_boxes[:, 3].clamp(0, height - 1),""",
           select="inference or eval_forward", why="clipping at the last pixel index (W - 1, H - 1), as a real S24 "
                                                   "solution does"),
    # The location order the course's own test_get_fpn_location_coords expects (p3 starts [[4, 4], [4, 12], ...]:
    # y fastest) with the head flattening (H, W) row by row as the starter says: predictions meet the targets of
    # the transposed locations. It is what the course's test asks for, so it keeps its points.
    Mutant("course_test_location_order", DU,
           find="location_coords[level_name] = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)",
           replace="location_coords[level_name] = torch.stack([grid_x.t().reshape(-1), grid_y.t().reshape(-1)], dim=1)",
           select="losses or location_coords or end_to_end", why="the course's test order of locations"),
    # "A stem of alternating 3x3 convolution layers and RELU activation modules", read as ending on a conv.
    Mutant("stems_end_with_conv", OSD, find="""            previous = channels
        # END SOLUTION""", replace="""            previous = channels
        stem_cls, stem_box = stem_cls[:-1], stem_box[:-1]  # no ReLU after a stem's last conv
        # END SOLUTION""", select="prediction_network or losses or end_to_end",
           why="the other reading of 'alternating convolution layers and RELU' (as a real S24 solution reads it)"),
    # Background losses zeroed the way many solutions do it: in place, where the GT deltas are -1.
    Mutant("losses_zeroed_in_place", OSD, find="""        loss_box = loss_box * foreground[:, :, None]
""", replace="""        loss_box[matched_gt_deltas < 0] *= 0.0
""", select="losses or end_to_end", why="background box losses zeroed in place via the -1 deltas"),
]
