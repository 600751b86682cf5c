"""Detection AP@0.5: the reference ``compute_map`` (fcos_detection) against pycocotools and torchmetrics.

    python -m bench.detection_map [--quick] [--out bench/results/detection_map.json]

The same synthetic test set for all three (1-6 GT boxes per image, 20 jittered
detections per image, 20 classes, no difficult boxes), at 50 / 500 / 5000 images.
Definitions differ slightly: the reference is PASCAL VOC's all-point AP (a detection
whose best box is already taken is a false positive); COCO (pycocotools, and
torchmetrics on top of it) interpolates at 101 recall points and lets a detection
fall back to its best *unmatched* box, with at most ``maxDets`` detections per image
(set to 20 here, i.e. all of them). The table shows each mAP and the largest per-class
difference. Target: the reference >= 10x faster than pycocotools on 5000 images.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math

import torch

from bench.common import machine, reference_module, save, seconds, table

SIZES = (50, 500, 5000)
QUICK_SIZES = (50,)
PER_IMAGE = 20
CLASSES = 20


def test_set(images: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    detections, truths = [], []
    for _ in range(images):
        m = int(torch.randint(1, 7, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 400
        wh = torch.rand(m, 2, generator=g) * 150 + 10
        gt = torch.cat([xy, xy + wh, torch.randint(0, CLASSES, (m, 1), generator=g).float()], dim=1)
        which = torch.randint(0, m, (PER_IMAGE,), generator=g)
        box = gt[which, :4] + torch.randn(PER_IMAGE, 4, generator=g) * 12
        box = torch.cat([torch.minimum(box[:, :2], box[:, 2:] - 1), torch.maximum(box[:, 2:], box[:, :2] + 1)], 1)
        cls = torch.where(torch.rand(PER_IMAGE, generator=g) < 0.8, gt[which, 4],
                          torch.randint(0, CLASSES, (PER_IMAGE,), generator=g).float())
        detections.append(torch.cat([box, cls[:, None], torch.rand(PER_IMAGE, 1, generator=g)], dim=1))
        truths.append(gt)
    return detections, truths


def pycocotools_ap(detections, truths) -> torch.Tensor:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations, results = [], []
    for image, (det, gt) in enumerate(zip(detections, truths)):
        for row in gt.tolist():
            w, h = row[2] - row[0], row[3] - row[1]
            annotations.append({"id": len(annotations) + 1, "image_id": image, "category_id": int(row[4]),
                                "bbox": [row[0], row[1], w, h], "area": w * h, "iscrowd": 0})
        for row in det.tolist():
            results.append({"image_id": image, "category_id": int(row[4]), "score": row[5],
                            "bbox": [row[0], row[1], row[2] - row[0], row[3] - row[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": [{"id": i} for i in range(len(truths))], "annotations": annotations,
                        "categories": [{"id": c} for c in range(CLASSES)]}
        coco.createIndex()
        found = coco.loadRes(results)
        evaluator = COCOeval(coco, found, "bbox")
        evaluator.params.iouThrs = [0.5]
        evaluator.params.maxDets = [PER_IMAGE]
        evaluator.params.areaRng = [[0, 1e10]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = torch.as_tensor(evaluator.eval["precision"][0, :, :, 0, 0])  # [R, K]
    precision[precision < 0] = math.nan
    return precision.mean(dim=0).double()


def torchmetrics_map(detections, truths) -> float:
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_thresholds=[0.5], max_detection_thresholds=[1, 10, PER_IMAGE])
    metric.update([{"boxes": d[:, :4], "scores": d[:, 5], "labels": d[:, 4].long()} for d in detections],
                  [{"boxes": g[:, :4], "labels": g[:, 4].long()} for g in truths])
    with contextlib.redirect_stdout(io.StringIO()):
        return float(metric.compute()["map_50"])


def run(quick: bool = False) -> dict:
    du = reference_module("fcos_detection", "detection_utils")
    rows = []
    for images in QUICK_SIZES if quick else SIZES:
        detections, truths = test_set(images)
        ap, mean_ap = du.compute_map(detections, truths, CLASSES)
        coco_ap = pycocotools_ap(detections, truths)
        coco_map = float(coco_ap[~torch.isnan(coco_ap)].mean())
        tm_map = torchmetrics_map(detections, truths)
        budget = 60.0
        t_ref = seconds(lambda d=detections, t=truths: du.compute_map(d, t, CLASSES), repeats=5)
        t_coco = seconds(lambda d=detections, t=truths: pycocotools_ap(d, t), repeats=3, warmup=0 if images > 500
                         else 1, budget=budget)
        t_tm = seconds(lambda d=detections, t=truths: torchmetrics_map(d, t), repeats=3, warmup=0 if images > 500
                       else 1, budget=budget)
        both = ~torch.isnan(ap) & ~torch.isnan(coco_ap)
        rows.append({"images": images, "detections": images * PER_IMAGE, "reference_ms": t_ref * 1e3,
                     "pycocotools_ms": t_coco * 1e3, "torchmetrics_ms": t_tm * 1e3,
                     "speedup_vs_pycocotools": t_coco / t_ref, "speedup_vs_torchmetrics": t_tm / t_ref,
                     "mAP_reference": mean_ap, "mAP_pycocotools": coco_map, "mAP_torchmetrics": tm_map,
                     "max_class_diff": float((ap[both] - coco_ap[both]).abs().max())})
    targets = {}
    big = [r for r in rows if r["images"] == 5000]
    if big:
        targets["ap50_10x_faster_than_pycocotools_5k"] = big[0]["speedup_vs_pycocotools"] >= 10
    growth = [{"from": a["images"], "to": b["images"], "reference": b["reference_ms"] / a["reference_ms"],
               "pycocotools": b["pycocotools_ms"] / a["pycocotools_ms"]} for a, b in zip(rows, rows[1:])]
    return {"rows": rows, "growth": growth, "targets": targets}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 images only (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (graders use 1)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/detection_map.json; quick: none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = machine()
    result = {"machine_before": before, **run(args.quick), "machine": machine()}
    print(f"detection AP@0.5: reference compute_map vs pycocotools / torchmetrics (load "
          f"{before['load_average'][0]:.2f}, torch {torch.__version__}, {args.threads} thread(s))")
    print(table(result["rows"], ["images", "detections", "reference_ms", "pycocotools_ms", "torchmetrics_ms",
                                 "speedup_vs_pycocotools", "mAP_reference", "mAP_pycocotools", "mAP_torchmetrics",
                                 "max_class_diff"]))
    print("targets:", result["targets"])
    if not args.quick or args.out:
        print("wrote", save("detection_map", result, args.out))
    return result


if __name__ == "__main__":
    main()
