"""``metrics.compute_ap`` (voc_classification, profile extended) against scikit-learn's ``average_precision_score`` per class.

    python -m bench.compute_ap [--quick] [--out bench/results/compute_ap.json]

Multi-label scores of N images x 20 classes (ties: scores rounded to 1/1000; 3 % of
the entries invalid, i.e. ``difficult``), N = 500 / 5000 / 50000. scikit-learn is
called once per class on the valid rows (what the course's starter code does);
the results agree to rounding.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bench.common import machine, reference_module, save, seconds, table

SIZES = (500, 5000, 50000)
QUICK_SIZES = (500,)
CLASSES = 20


def inputs(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    gt = (rng.random((rows, CLASSES)) < 0.08).astype(np.float32)
    pred = np.round(rng.random((rows, CLASSES)) * 0.6 + gt * rng.random((rows, CLASSES)) * 0.5, 3).astype(np.float32)
    valid = (rng.random((rows, CLASSES)) > 0.03).astype(np.float32)
    return gt, pred, valid


def sklearn_ap(gt, pred, valid) -> np.ndarray:
    from sklearn.metrics import average_precision_score

    out = np.full(gt.shape[1], np.nan)
    for c in range(gt.shape[1]):
        keep = valid[:, c] > 0
        if gt[keep, c].sum() > 0:
            out[c] = average_precision_score(gt[keep, c], pred[keep, c])
    return out


def run(quick: bool = False) -> dict:
    metrics = reference_module("voc_classification", "metrics")
    rows = []
    for n in QUICK_SIZES if quick else SIZES:
        gt, pred, valid = inputs(n)
        ours, theirs = metrics.compute_ap(gt, pred, valid), sklearn_ap(gt, pred, valid)
        t_ours = seconds(lambda a=(gt, pred, valid): metrics.compute_ap(*a), repeats=5)
        t_theirs = seconds(lambda a=(gt, pred, valid): sklearn_ap(*a), repeats=3)
        rows.append({"rows": n, "classes": CLASSES, "reference_ms": t_ours * 1e3, "sklearn_ms": t_theirs * 1e3,
                     "speedup": t_theirs / t_ours, "max_abs_diff": float(np.nanmax(np.abs(ours - theirs)))})
    growth = [{"from": a["rows"], "to": b["rows"], "reference": b["reference_ms"] / a["reference_ms"],
               "sklearn": b["sklearn_ms"] / a["sklearn_ms"]} for a, b in zip(rows, rows[1:])]
    return {"rows": rows, "growth": growth}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 rows only (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (graders use 1)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/compute_ap.json; quick: none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = machine()
    result = {"machine_before": before, **run(args.quick), "machine": machine()}
    print(f"compute_ap vs sklearn average_precision_score (load {before['load_average'][0]:.2f})")
    print(table(result["rows"], ["rows", "classes", "reference_ms", "sklearn_ms", "speedup", "max_abs_diff"]))
    if not args.quick or args.out:
        print("wrote", save("compute_ap", result, args.out))
    return result


if __name__ == "__main__":
    main()
