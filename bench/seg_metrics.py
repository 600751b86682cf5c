"""Segmentation metrics (semantic_segmentation) against torchmetrics on the same label maps.

    python -m bench.seg_metrics [--quick] [--out bench/results/seg_metrics.json]

``confusion_matrix`` + ``per_class_iou`` of the reference against torchmetrics'
``multiclass_confusion_matrix`` + ``multiclass_jaccard_index`` (19 classes, ignore
index 255, 5 % ignored pixels), with and without torchmetrics' argument validation.
Sizes: 2 x 128^2, 8 x 256^2 and 64 x 512^2 masks (32k to 16.8M pixels). Target:
at least as fast as torchmetrics on 64 masks of 512 x 512.
"""

from __future__ import annotations

import argparse

import torch

from bench.common import machine, reference_module, save, seconds, table

SIZES = ((2, 128), (8, 256), (64, 512))
QUICK_SIZES = ((2, 128),)
CLASSES = 19


def masks(count: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, CLASSES, (count, size, size), generator=g)
    noise = torch.randint(0, CLASSES, (count, size, size), generator=g)
    pred = torch.where(torch.rand(count, size, size, generator=g) < 0.7, target, noise)
    return pred, target.masked_fill(torch.rand(count, size, size, generator=g) < 0.05, 255)


def run(quick: bool = False) -> dict:
    from torchmetrics.functional.classification import multiclass_confusion_matrix, multiclass_jaccard_index

    sm = reference_module("semantic_segmentation", "seg_metrics")

    def ours(pred, target):
        cm = sm.confusion_matrix(pred, target, CLASSES)
        return cm, sm.per_class_iou(cm)

    def theirs(pred, target, validate=True):
        cm = multiclass_confusion_matrix(pred, target, CLASSES, ignore_index=255, validate_args=validate)
        iou = multiclass_jaccard_index(pred, target, CLASSES, average="none", ignore_index=255,
                                       validate_args=validate)
        return cm, iou

    rows = []
    for count, size in QUICK_SIZES if quick else SIZES:
        pred, target = masks(count, size)
        (cm, iou), (tcm, tiou) = ours(pred, target), theirs(pred, target)
        t_ours = seconds(lambda p=pred, t=target: ours(p, t), repeats=5)
        t_tm = seconds(lambda p=pred, t=target: theirs(p, t), repeats=5)
        t_tm_fast = seconds(lambda p=pred, t=target: theirs(p, t, False), repeats=5)
        present = ~torch.isnan(iou)
        rows.append({"masks": f"{count}x{size}^2", "pixels": count * size * size, "reference_ms": t_ours * 1e3,
                     "torchmetrics_ms": t_tm * 1e3, "torchmetrics_novalidate_ms": t_tm_fast * 1e3,
                     "speedup": t_tm / t_ours, "speedup_novalidate": t_tm_fast / t_ours,
                     "cm_equal": bool(torch.equal(cm, tcm.long())),
                     "iou_max_diff": float((iou[present] - tiou.double()[present]).abs().max())})
    targets = {}
    if not quick:
        targets["as_fast_as_torchmetrics_64x512"] = rows[-1]["speedup"] >= 1.0
    return {"rows": rows, "targets": targets}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smallest size only (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (graders use 1)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/seg_metrics.json; quick: none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = machine()
    result = {"machine_before": before, **run(args.quick), "machine": machine()}
    print(f"segmentation metrics vs torchmetrics (load {before['load_average'][0]:.2f}, {args.threads} thread(s))")
    print(table(result["rows"], ["masks", "pixels", "reference_ms", "torchmetrics_ms", "torchmetrics_novalidate_ms",
                                 "speedup", "speedup_novalidate", "cm_equal", "iou_max_diff"]))
    print("targets:", result["targets"])
    if not args.quick or args.out:
        print("wrote", save("seg_metrics", result, args.out))
    return result


if __name__ == "__main__":
    main()
