"""Learnability (slow): FCN32s trained on synthetic satellite masks reaches mIoU >= 0.7 on held-out images.

Run with ``python -m pytest tests/semantic_segmentation -m slow -s``; the numbers go to
reference/semantic_segmentation/README.md.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from grader.data.semantic_segmentation import make_satellite


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_fcn32s_learns_satellite_masks(ref, tmp_path):
    torch.set_num_threads(2)
    make_satellite(tmp_path / "train", 96, seed=0, size=(64, 64))
    make_satellite(tmp_path / "val", 16, seed=1, size=(64, 64))
    start = time.perf_counter()
    history = ref.train.fit(tmp_path / "train", tmp_path / "val", arch="fcn32s", epochs=60, batch_size=4, lr=1e-3,
                            width=0.125, batch_norm=True, loss="poly1", hflip=0.5, seed=0, out=tmp_path / "best.pt",
                            lr_policy="poly")
    seconds = time.perf_counter() - start
    print(f"\nFCN32s (VGG16-BN trunk, width 1/8), 96 train / 16 val images 64x64, 60 epochs, poly lr: "
          f"val mIoU per epoch {[round(m, 3) for m in history['miou']]}, best {history['best_miou']:.3f}, "
          f"{seconds:.0f} s")
    assert history["best_miou"] >= 0.7
    assert history["miou"][-1] >= 0.7  # the poly schedule ends on a settled model, not a lucky epoch
    # the saved checkpoint, through the inference script and the course's metric, gives the same quality
    ref.inference.main(["--input_dir", str(tmp_path / "val"), "--output_dir", str(tmp_path / "pred"),
                        "--checkpoint", str(tmp_path / "best.pt"), "--device", "cpu"])
    pred = ref.mask_utils.read_masks(tmp_path / "pred")
    labels = np.stack([ref.mask_utils.read_mask(p).numpy() for p in sorted((tmp_path / "val").glob("*_mask.png"))])
    score = ref.seg_metrics.mean_iou_score(pred, labels)
    print(f"course mean_iou_score of the written masks (classes 0..5): {score:.3f}")
    assert score >= 0.6
