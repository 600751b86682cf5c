"""Hidden speed checks: nms, calculate_map and WSDDN's region scoring against the reference.

The student's function and the reference's run in identical sandboxed workers
(``grader.perf``); every result is checked, and credit falls on a log scale of
the time ratio. nms and calculate_map use sizes where a per-element Python
loop is > 100x the reference. WSDDN.forward is dominated by its dense layers:
scoring the regions one at a time costs only ~10-15x (a matrix-vector product
per region instead of one matrix product), so its thresholds are tighter
(docs/performance.md). The CUDA variants are counted only
where the manifest says ``grading.gpu = true``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grader.compare import GradingFailure, assert_close, assert_equal
from grader.perf import SpeedPolicy, compare_speed
from grader.student import module_info

NMS_POLICY = SpeedPolicy(full_at=8.0, none_at=60.0)  # a Python loop over the *kept* boxes is allowed
MAP_POLICY = SpeedPolicy(full_at=4.0, none_at=40.0)
WSDDN_POLICY = SpeedPolicy(full_at=2.5, none_at=8.0)
WSDDN_HIDDEN = 1024
WSDDN_IMAGE = 160
WSDDN_REGIONS = 200


pytestmark = [pytest.mark.usefixtures("one_torch_thread"),  # as in the workers, also with --no-sandbox
              pytest.mark.part("extended")]  # the starter asks for no speed (nor vectorised code)

def clustered_boxes(seed: int, count: int = 300, objects: int = 15, size: float = 1.0):
    """Proposal-like boxes (normalised coordinates): ``count`` jittered boxes around ``objects`` objects."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(objects, 2, generator=g) * size
    sizes = (torch.rand(objects, 2, generator=g) * 0.15 + 0.02) * size
    which = torch.randint(0, objects, (count,), generator=g)
    jitter = torch.randn(count, 4, generator=g) * 0.15
    centre, wh = centres[which], sizes[which]
    x1y1 = centre - wh / 2 + jitter[:, :2] * wh
    x2y2 = centre + wh / 2 + jitter[:, 2:] * wh
    boxes = torch.cat([torch.minimum(x1y1, x2y2 - 0.001), torch.maximum(x2y2, x1y1 + 0.001)], dim=1)
    return boxes, torch.rand(count, generator=g)


def map_inputs(seed: int, images: int = 10, per_image: int = 400, classes: int = 20):
    """``images`` images with 1-6 GT boxes and ``per_image`` jittered detections each."""
    g = torch.Generator().manual_seed(seed)
    detections, truths = [], []
    for _ in range(images):
        m = int(torch.randint(1, 7, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 0.7
        gt = torch.cat([xy, xy + torch.rand(m, 2, generator=g) * 0.3 + 0.02], dim=1)
        gt_labels = torch.randint(0, classes, (m,), generator=g)
        which = torch.randint(0, m, (per_image,), generator=g)
        box = gt[which] + torch.randn(per_image, 4, generator=g) * 0.02
        box = torch.cat([torch.minimum(box[:, :2], box[:, 2:] - 0.001), torch.maximum(box[:, 2:], box[:, :2] + 0.001)],
                        dim=1)
        labels = torch.where(torch.rand(per_image, generator=g) < 0.8, gt_labels[which],
                             torch.randint(0, classes, (per_image,), generator=g))
        detections.append((box, torch.rand(per_image, generator=g), labels))
        truths.append((gt, gt_labels))
    return detections, truths, classes


def check_nms(got, expected):
    assert isinstance(got, (tuple, list)) and len(got) == 2, "nms must return (boxes, scores)"
    assert_equal(torch.as_tensor(got[0]), expected[0])
    assert_equal(torch.as_tensor(got[1]), expected[1])


def check_map(got, expected):
    assert isinstance(got, (tuple, list)) and len(got) == 2, "calculate_map must return (aps, mean_ap)"
    assert_close(torch.as_tensor(np.asarray(got[0], dtype=np.float64)), torch.as_tensor(expected[0]),
                 rtol=1e-9, atol=1e-9, equal_nan=True)


CHECKS = {
    "nms": dict(function="utils.nms", inputs=lambda i: ((*clustered_boxes(100 + i), 0.05, 0.3), {}),
                check=check_nms, policy=NMS_POLICY),
    # Fresh inputs for every call (an answer remembered from an earlier call must not win the point).
    "map": dict(function="task_2.calculate_map", inputs=lambda i: (map_inputs(200 + i), {}), check=check_map,
                policy=MAP_POLICY),
}


def wsddn_inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 3, WSDDN_IMAGE, WSDDN_IMAGE, generator=g)
    xy = torch.rand(WSDDN_REGIONS, 2, generator=g) * WSDDN_IMAGE * 0.7
    rois = torch.cat([xy, xy + torch.rand(WSDDN_REGIONS, 2, generator=g) * WSDDN_IMAGE * 0.3 + 16], dim=1)
    return (image, rois), {}


def map_parameters(student_info: dict, reference_state: dict) -> dict:
    """Reference weights under the student's parameter names, matched in order within each group and by shape."""
    groups = ("features", "classifier", "score_fc", "bbox_fc")
    mapped = {}
    for group in groups:
        mine = [(n, tuple(s)) for n, s, *_ in student_info["parameters"] if n.split(".", 1)[0] == group]
        theirs = [(n, tuple(v.shape)) for n, v in reference_state.items() if n.split(".", 1)[0] == group]
        if [s for _, s in mine] != [s for _, s in theirs]:
            raise GradingFailure(f"your WSDDN.{group} has parameter shapes {[list(s) for _, s in mine]}; expected "
                                 f"{[list(s) for _, s in theirs]} (WSDDN(hidden_dim={WSDDN_HIDDEN}))")
        mapped.update({name: reference_state[ref_name] for (name, _), (ref_name, _) in zip(mine, theirs)})
    return mapped


def wsddn_pair(student, reference_worker, reference, wl):
    """The student's WSDDN and the reference's, in their workers, in eval mode with the same weights."""
    torch.manual_seed(43)
    state = reference.wsddn.WSDDN(classes=wl.classes, hidden_dim=WSDDN_HIDDEN).eval().state_dict()
    mine = wl.eval_mode(student.wsddn.WSDDN(classes=wl.classes, hidden_dim=WSDDN_HIDDEN))
    mine.load_state_dict(map_parameters(module_info(mine), state), strict=False)
    theirs = wl.eval_mode(reference_worker.wsddn.WSDDN(classes=wl.classes, hidden_dim=WSDDN_HIDDEN))
    theirs.load_state_dict(state)
    return mine, theirs


def grade_wsddn(student, reference_worker, reference, wl, set_score_fraction, device: str | None = None):
    mine, theirs = wsddn_pair(student, reference_worker, reference, wl)
    if device is not None:
        wl._keep.extend([mine.to(device), theirs.to(device)])  # keep the returned proxies alive (see wl)
    result = compare_speed(mine, theirs, inputs=wsddn_inputs, name="WSDDN.forward (eval)", repeats=3, warmup=1,
                           check=lambda got, want: assert_close(got, want, rtol=2e-3, atol=1e-6),
                           policy=WSDDN_POLICY, device=device)
    set_score_fraction(result.credit)
    if result.credit < 1.0:
        raise GradingFailure(result.message() + "\nHint: pool and classify all regions at once (one roi_pool "
                                                "call, one pass through the classifier).")
    return result


@pytest.mark.weight(1)
@pytest.mark.number("2.14")
def test_speed_nms(timing):
    """nms is vectorized: 300 proposal-like boxes, within 8x of the reference for full credit"""
    timing.grade(**CHECKS["nms"])


@pytest.mark.weight(1)
@pytest.mark.number("2.15")
def test_speed_map(timing):
    """calculate_map is vectorized over the detections of an image: 10 images x 400 detections"""
    timing.grade(**CHECKS["map"])


@pytest.mark.weight(1)
@pytest.mark.number("2.16")
@pytest.mark.sandbox(call_timeout=120)
def test_speed_wsddn(student, reference_worker, reference, wl, set_score_fraction):
    """WSDDN.forward scores all regions at once (200 regions, hidden width 1024), within 2.5x of the reference"""
    grade_wsddn(student, reference_worker, reference, wl, set_score_fraction)


@pytest.mark.cuda
@pytest.mark.weight(2)
@pytest.mark.parametrize("which", sorted(CHECKS))
def test_speed_cuda(timing, which):
    """speed on a GPU (counted where the course grades on a GPU, grading.gpu = true)"""
    timing.grade(**CHECKS[which], device="cuda")


@pytest.mark.cuda
@pytest.mark.weight(1)
def test_speed_cuda_wsddn(student, reference_worker, reference, wl, set_score_fraction):
    """WSDDN.forward speed on a GPU (counted where the course grades on a GPU, grading.gpu = true)"""
    grade_wsddn(student, reference_worker, reference, wl, set_score_fraction, device="cuda")
