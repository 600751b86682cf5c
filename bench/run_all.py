"""Every benchmark, one after the other: ``python -m bench.run_all [--quick] [--skip grading_budget]``.

Each prints its table and writes ``bench/results/<name>.json`` (not in quick mode).
``--plot`` also draws the nms curve into docs/img/nms_curve.png.
"""

from __future__ import annotations

import argparse
import importlib
import time

BENCHES = ("nms", "detection_map", "compute_ap", "seg_metrics", "fcos_matching", "grading_budget")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smallest sizes only, no JSON (smoke run)")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--plot", action="store_true", help="draw docs/img/nms_curve.png")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    results = {}
    for name in BENCHES:
        if name in skip:
            continue
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        options = ["--quick"] if args.quick else []
        if name == "nms" and args.plot:
            options += ["--plot", "docs/img/nms_curve.png"]
        print(f"\n== bench.{name} ==")
        results[name] = module.main(options)
        print(f"({time.perf_counter() - started:.1f} s)")
    return results


if __name__ == "__main__":
    main()
