"""Learnability (slow): the reference FCOS overfits a small synthetic VOC set to mAP@0.5 >= 0.9 on CPU.

Run with ``python -m pytest tests/fcos_detection -m slow -s``; the same run from
the command line is

    python -m reference.fcos_detection.train --synthetic --data_dir /tmp/fcos_data --overfit \\
        --optimizer adam --lr 1e-3 --image_size 96 --subset_size 8 --batch_size 8 --max_iters 150 \\
        --log_period 10 --eval_period 25 --inference --fpn_channels 32 --stem_channels 32 32 --num_threads 1

Numbers, machine and time are in reference/fcos_detection/README.md.
"""

from __future__ import annotations

import time

import pytest

OVERFIT_ARGS = ["--overfit", "--optimizer", "adam", "--lr", "1e-3", "--image_size", "96", "--subset_size", "8",
                "--batch_size", "8", "--max_iters", "150", "--log_period", "10", "--eval_period", "25",
                "--inference", "--fpn_channels", "32", "--stem_channels", "32", "32", "--num_threads", "1",
                "--no-progress"]


@pytest.mark.slow
def test_reference_overfits_synthetic_voc(ref, tmp_path):
    train = ref.train
    args = train.parse_args(["--synthetic", "--data_dir", str(tmp_path / "data"), "--log_dir", str(tmp_path / "logs"),
                             "--checkpoint", str(tmp_path / "fcos.pt"), *OVERFIT_ARGS])
    start = time.time()
    summary = train.main(args)
    elapsed = time.time() - start
    curve = [(h["iter"], round(h["total"], 3), h.get("mAP")) for h in summary["history"]]
    print(f"\noverfit curve (iter, total loss, mAP): {curve}\nfinal mAP@0.5 {summary['map']:.3f} in {elapsed:.0f} s")
    assert summary["history"][-1]["total"] < summary["history"][0]["total"]
    assert summary["map"] >= 0.9, curve
