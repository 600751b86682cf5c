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
    """compute_ap equals sklearn's average_precision_score per class (with invalid entries and ties)"""
    labels, scores, valid, shape = case
    gt = np.array(labels, dtype=np.float32).reshape(shape)
    pred = np.array(scores, dtype=np.float32).reshape(shape)
    valid = np.array(valid, dtype=np.float32).reshape(shape)
    valid[0] = 1  # every class has a valid row (the handout's sklearn call fails on an empty class)
    got = student.metrics.compute_ap(gt, pred, valid)
    check_ap(got, gt, pred, valid, describe_call("compute_ap", gt, pred, valid))
