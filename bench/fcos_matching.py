"""FCOS target matching: the reference ``fcos_match_locations_to_gt`` against torchvision's FCOS matcher.

    python -m bench.fcos_matching [--quick] [--out bench/results/fcos_matching.json]

torchvision's rule set (``torchvision.models.detection.fcos.FCOS.compute_loss``, the
loop body for one image, copied below) on the same locations: anchors of side
``stride`` centred on the locations, levels p3-p5 (strides 8/16/32). With its
centre sampling (radius 1.5) the rules differ from the course's; with the radius
set to infinity they are the same (inside the box, ``max(l, t, r, b)`` within the
level's range, smallest area wins), and the matched boxes must be equal.
Sizes: images of 256 / 512 / 1024 px (1344 to 21504 locations) x 10 / 100 boxes.
"""

from __future__ import annotations

import argparse
import math

import torch

from bench.common import machine, reference_module, save, seconds, table

STRIDES = {"p3": 8, "p4": 16, "p5": 32}
SIZES = ((256, 10), (512, 10), (1024, 10), (256, 100), (512, 100), (1024, 100))
QUICK_SIZES = ((256, 10),)


def scene(size: int, boxes: int, seed: int = 0):
    locations = {}
    for level, stride in STRIDES.items():
        centres = (torch.arange(size // stride, dtype=torch.float32) + 0.5) * stride
        ys, xs = torch.meshgrid(centres, centres, indexing="ij")
        locations[level] = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(boxes, 2, generator=g) * size * 0.8
    wh = torch.rand(boxes, 2, generator=g) * size * 0.5 + 8
    gt = torch.cat([xy, (xy + wh).clamp(max=size), torch.randint(0, 20, (boxes, 1), generator=g).float()], dim=1)
    return locations, gt


def torchvision_match(anchors: torch.Tensor, num_anchors_per_level: list[int], gt_boxes: torch.Tensor,
                      center_sampling_radius: float = 1.5) -> torch.Tensor:
    """The matching of ``torchvision.models.detection.fcos.FCOS.compute_loss`` for one image (BSD-3-Clause)."""
    gt_centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    anchor_centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    anchor_sizes = anchors[:, 2] - anchors[:, 0]
    pairwise_match = (anchor_centers[:, None, :] - gt_centers[None, :, :]).abs_().max(
        dim=2).values < center_sampling_radius * anchor_sizes[:, None]
    x, y = anchor_centers.unsqueeze(dim=2).unbind(dim=1)
    x0, y0, x1, y1 = gt_boxes.unsqueeze(dim=0).unbind(dim=2)
    pairwise_dist = torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)
    pairwise_match &= pairwise_dist.min(dim=2).values > 0
    lower_bound = anchor_sizes * 4
    lower_bound[: num_anchors_per_level[0]] = 0
    upper_bound = anchor_sizes * 8
    upper_bound[-num_anchors_per_level[-1]:] = float("inf")
    pairwise_dist = pairwise_dist.max(dim=2).values
    pairwise_match &= (pairwise_dist > lower_bound[:, None]) & (pairwise_dist < upper_bound[:, None])
    gt_areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    pairwise_match = pairwise_match.to(torch.float32) * (1e8 - gt_areas[None, :])
    min_values, matched_idx = pairwise_match.max(dim=1)
    matched_idx[min_values < 1e-5] = -1
    return matched_idx


def run(quick: bool = False) -> dict:
    du = reference_module("fcos_detection", "detection_utils")
    rows = []
    for size, count in QUICK_SIZES if quick else SIZES:
        locations, gt = scene(size, count)
        anchors = torch.cat([torch.cat([c - STRIDES[k] / 2, c + STRIDES[k] / 2], dim=1) for k, c in locations.items()])
        per_level = [c.shape[0] for c in locations.values()]
        ours = du.fcos_match_locations_to_gt(locations, STRIDES, gt)
        index = torchvision_match(anchors, per_level, gt[:, :4], math.inf)
        theirs = torch.where(index[:, None] >= 0, gt[index.clamp(min=0)], torch.full_like(gt[:1], -1))
        t_ours = seconds(lambda loc=locations, g=gt: du.fcos_match_locations_to_gt(loc, STRIDES, g), repeats=7)
        t_tv = seconds(lambda a=anchors, g=gt, n=per_level: torchvision_match(a, n, g[:, :4]), repeats=7)
        t_tv_inf = seconds(lambda a=anchors, g=gt, n=per_level: torchvision_match(a, n, g[:, :4], math.inf),
                           repeats=7)
        rows.append({"image": size, "locations": anchors.shape[0], "boxes": count, "reference_ms": t_ours * 1e3,
                     "torchvision_ms": t_tv * 1e3, "torchvision_no_centre_ms": t_tv_inf * 1e3,
                     "ratio": t_ours / t_tv, "equal_without_centre_sampling":
                         bool(torch.equal(torch.cat(list(ours.values())), theirs))})
    return {"rows": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smallest size only (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (graders use 1)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/fcos_matching.json; quick: none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = machine()
    result = {"machine_before": before, **run(args.quick), "machine": machine()}
    print(f"FCOS matching vs torchvision's matcher (load {before['load_average'][0]:.2f}, {args.threads} thread(s))")
    print(table(result["rows"], ["image", "locations", "boxes", "reference_ms", "torchvision_ms",
                                 "torchvision_no_centre_ms", "ratio", "equal_without_centre_sampling"]))
    if not args.quick or args.out:
        print("wrote", save("fcos_matching", result, args.out))
    return result


if __name__ == "__main__":
    main()
