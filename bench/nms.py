"""Reference ``nms`` / ``box_iou`` (fcos_detection) against ``torchvision.ops`` on the same boxes.

    python -m bench.nms [--quick] [--threads 1] [--plot docs/img/nms_curve.png] [--out bench/results/nms.json]

Detector-like scenes: N boxes jittered around N / 20 objects, random scores.
Every result is compared (nms: same kept indices; box_iou: max abs difference). Each pair of
functions is timed side by side (calls interleaved), best call of each.
Targets (CPU): reference nms within 2x of torchvision at 1k boxes, within 4x at 10k.
"""

from __future__ import annotations

import argparse

import torch
import torchvision

from bench.common import machine, reference_module, save, side_by_side, table

SIZES = (100, 300, 1000, 3000, 10000)
QUICK_SIZES = (100, 1000)
IOU_SIZES = (100, 1000, 3000)
# Best of up to 50 interleaved calls (fewer where 50 would exceed the 20 s budget of a size).
REPEATS = 50


def scene(count: int, seed: int = 0, size: float = 800.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    objects = max(count // 20, 1)
    centres = torch.rand(objects, 2, generator=g) * size
    sizes = torch.rand(objects, 2, generator=g) * 120 + 16
    which = torch.randint(0, objects, (count,), generator=g)
    jitter = torch.randn(count, 4, generator=g) * 0.15
    centre, wh = centres[which], sizes[which]
    x1y1 = centre - wh / 2 + jitter[:, :2] * wh
    x2y2 = centre + wh / 2 + jitter[:, 2:] * wh
    boxes = torch.cat([torch.minimum(x1y1, x2y2 - 1), torch.maximum(x2y2, x1y1 + 1)], dim=1)
    return boxes, torch.rand(count, generator=g)


def run(quick: bool = False) -> dict:
    du = reference_module("fcos_detection", "detection_utils")
    rows = []
    for count in QUICK_SIZES if quick else SIZES:
        boxes, scores = scene(count)
        ours = du.nms(boxes, scores, 0.5)
        theirs = torchvision.ops.nms(boxes, scores, 0.5)
        times = side_by_side({"ours": lambda b=boxes, s=scores: du.nms(b, s, 0.5),
                              "theirs": lambda b=boxes, s=scores: torchvision.ops.nms(b, s, 0.5)},
                             repeats=3 if quick else REPEATS)
        t_ours, t_theirs = times["ours"], times["theirs"]
        rows.append({"function": "nms", "boxes": count, "kept": int(ours.numel()), "reference_ms": t_ours * 1e3,
                     "torchvision_ms": t_theirs * 1e3, "ratio": t_ours / t_theirs,
                     "equal": bool(torch.equal(ours, theirs))})
    for count in QUICK_SIZES[:1] if quick else IOU_SIZES:
        boxes, _ = scene(count, seed=1)
        ours = du.box_iou(boxes, boxes)
        theirs = torchvision.ops.box_iou(boxes, boxes)
        times = side_by_side({"ours": lambda b=boxes: du.box_iou(b, b),
                              "theirs": lambda b=boxes: torchvision.ops.box_iou(b, b)},
                             repeats=3 if quick else REPEATS)
        t_ours, t_theirs = times["ours"], times["theirs"]
        rows.append({"function": "box_iou", "boxes": count, "kept": "", "reference_ms": t_ours * 1e3,
                     "torchvision_ms": t_theirs * 1e3, "ratio": t_ours / t_theirs,
                     "equal": float((ours - theirs).abs().max()) <= 1e-6})
    nms_rows = {r["boxes"]: r for r in rows if r["function"] == "nms"}
    growth = [{"from": a, "to": b, "reference": nms_rows[b]["reference_ms"] / nms_rows[a]["reference_ms"],
               "torchvision": nms_rows[b]["torchvision_ms"] / nms_rows[a]["torchvision_ms"]}
              for a, b in zip(sorted(nms_rows), sorted(nms_rows)[1:])]
    targets = {}
    if 1000 in nms_rows:
        targets["nms_1k_within_2x"] = nms_rows[1000]["ratio"] <= 2.0
    if 10000 in nms_rows:
        targets["nms_10k_within_4x"] = nms_rows[10000]["ratio"] <= 4.0
    return {"rows": rows, "growth": growth, "targets": targets}


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["function"] == "nms"]
    sizes = [r["boxes"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    ax.loglog(sizes, [r["reference_ms"] for r in rows], "o-", label="reference nms")
    ax.loglog(sizes, [r["torchvision_ms"] for r in rows], "s-", label="torchvision.ops.nms")
    ax.set_xlabel("boxes (N / 20 objects)")
    ax.set_ylabel("ms per call (1 thread)")
    load = result["machine"]["load_average"][0]
    ax.set_title(f"NMS, IoU 0.5, CPU (load {load:.1f})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small sizes (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (graders use 1)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/nms.json; quick: none)")
    parser.add_argument("--plot", default=None, help="write the nms curve as a PNG here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = machine()
    result = run(args.quick)
    result = {"machine_before": before, **result, "machine": machine()}
    print(f"nms / box_iou vs torchvision.ops (load {before['load_average'][0]:.2f}, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, {args.threads} thread(s))")
    print(table(result["rows"], ["function", "boxes", "kept", "reference_ms", "torchvision_ms", "ratio", "equal"]))
    print("growth per step:", ", ".join(f"{g['from']}->{g['to']}: ref x{g['reference']:.1f}, tv x{g['torchvision']:.1f}"
                                        for g in result["growth"]))
    print("targets:", result["targets"])
    if not args.quick or args.out:
        print("wrote", save("nms", result, args.out))
    if args.plot:
        plot(result, args.plot)
        print("wrote", args.plot)
    return result


if __name__ == "__main__":
    main()
