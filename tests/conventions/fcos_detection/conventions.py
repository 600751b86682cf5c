"""Right answers written the way real 16-824 students write them; each must keep full marks
(tests/test_course_conventions.py). They are rewrites of the reference by the project, not students' code."""

from grader.mutation import Mutant

OSD = "one_stage_detector.py"
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
]
