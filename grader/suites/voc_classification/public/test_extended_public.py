"""This project's metrics (part ``extended``, metrics.py): compute_ap equal to scikit-learn's, with and without ties.

The S24 starter's ``utils.compute_ap`` is course code ("do not modify"); these
tests grade the project's own version, in the extended profile only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.compare import assert_close, check, describe_call
from grader.student import call_keeping_inputs

pytestmark = pytest.mark.part("extended")


# -- 4.1 AP ---------------------------------------------------------------------------------------

def sklearn_ap(gt, pred, valid, tie_break=False):
    """Per-class AP with scikit-learn on the valid rows (NaN when a class has no valid positive)."""
    from sklearn.metrics import average_precision_score

    result = []
    for c in range(gt.shape[1]):
        keep = valid[:, c] > 0
        y, s = gt[keep, c].astype(np.float32), pred[keep, c].astype(np.float32)
        if tie_break:  # the handout's PhilK rule: ties between a positive and a negative count against
            s = s - 1e-5 * y
        result.append(average_precision_score(y, s) if y.sum() > 0 else np.nan)
    return np.array(result)


def check_ap(got, gt, pred, valid, call):
    check(isinstance(got, (list, tuple, np.ndarray, torch.Tensor)),
          f"expected one AP per class (a list or array), got {type(got).__name__}", call=call)
    got = np.asarray([float(v) for v in got], dtype=np.float64)
    check(got.shape == (gt.shape[1],), f"expected {gt.shape[1]} values (one per class), got {got.shape[0]}",
          call=call)
    readings = [sklearn_ap(gt, pred, valid), sklearn_ap(gt, pred, valid, tie_break=True)]
    no_positive = np.isnan(readings[0])
    # A class without a valid positive: NaN (the reference) or 0.0 (scikit-learn's value) are both accepted.
    ok_empty = np.isnan(got[no_positive]) | (got[no_positive] == 0)
    check(bool(ok_empty.all()), "a class with no valid positive example must get NaN (or 0.0)", call=call)
    for expected in readings:
        if np.allclose(got[~no_positive], expected[~no_positive], rtol=1e-6, atol=1e-9):
            return
    assert_close(torch.from_numpy(got), torch.from_numpy(readings[0]), call=call, rtol=1e-6, atol=1e-9,
                 equal_nan=True, what="AP per class",
                 hint="AP = sum over distinct scores of (recall step) * precision, on the rows with valid > 0 only; "
                      "tied scores enter together (sklearn.metrics.average_precision_score)")


ap_cases = st.integers(1, 30).flatmap(lambda n: st.integers(1, 6).flatmap(lambda c: st.tuples(
    st.lists(st.integers(0, 1), min_size=n * c, max_size=n * c),
    st.lists(st.one_of(st.sampled_from([0.1, 0.2, 0.5, 0.9]), st.floats(0, 1, width=32)), min_size=n * c,
             max_size=n * c),
    st.lists(st.sampled_from([0, 1, 1, 1]), min_size=n * c, max_size=n * c),
    st.just((n, c)))))


@pytest.mark.weight(1)
@pytest.mark.number("4.1")
@settings(max_examples=25)
@given(ap_cases)
def test_compute_ap_matches_sklearn(student, case):
    """compute_ap equals sklearn's average_precision_score per class (with invalid entries and ties), inputs unchanged"""
    labels, scores, valid, shape = case
    gt = np.array(labels, dtype=np.float32).reshape(shape)
    pred = np.array(scores, dtype=np.float32).reshape(shape)
    valid = np.array(valid, dtype=np.float32).reshape(shape)
    valid[0] = 1  # every class has a valid row (the handout's sklearn call fails on an empty class)
    got = call_keeping_inputs(student.metrics.compute_ap, gt, pred, valid)
    check_ap(got, gt, pred, valid, describe_call("compute_ap", gt, pred, valid))


@pytest.mark.weight(0.5)
@pytest.mark.number("4.4")
def test_compute_ap_macro(student):
    """compute_ap(..., average="macro"): one float, the mean AP over the classes that have one"""
    rng = np.random.default_rng(44)
    gt = (rng.random((23, 7)) < 0.4).astype(np.float32)
    pred = np.round(rng.random((23, 7)), 2).astype(np.float32)
    valid = (rng.random((23, 7)) < 0.9).astype(np.float32)
    gt[0], valid[0] = 1, 1  # every class has a valid positive ...
    gt[:, 6] = 0  # ... but the last, which has no AP
    call = describe_call("compute_ap", gt, pred, valid, average="macro")
    got = call_keeping_inputs(student.metrics.compute_ap, gt, pred, valid, average="macro")
    check(isinstance(got, (float, int, np.floating)) or (np.ndim(got) == 0 and not isinstance(got, (list, tuple))),
          f"expected one number with average='macro', got {type(got).__name__} {np.shape(got)}", call=call,
          hint="with average='macro' return the mean of the per-class APs (a float), not the per-class array")
    got = float(got)
    readings = [sklearn_ap(gt, pred, valid), sklearn_ap(gt, pred, valid, tie_break=True)]
    # The class without a positive has no AP (NaN): left out of the mean; a compute_ap that gives it 0.0 (sklearn's
    # value, accepted per class) may average that 0.0 in.
    accepted = [float(np.nanmean(r)) for r in readings] + [float(np.nan_to_num(r).mean()) for r in readings]
    check(any(np.isclose(got, value, rtol=1e-6, atol=1e-9) for value in accepted),
          f"expected {accepted[0]:.6f} (the mean of the classes' APs), got {got}", call=call,
          hint="average='macro': the mean over the classes that have an AP (np.nanmean of the per-class values)")
