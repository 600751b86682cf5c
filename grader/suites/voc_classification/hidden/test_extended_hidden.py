"""This project's metrics (part ``extended``, metrics.py): eval_dataset_map over the whole test set, with a sigmoid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grader.compare import assert_close, check

pytestmark = pytest.mark.part("extended")


def _batches(g):
    """Three batches of 4-pixel 'images' whose per-batch and softmax readings give other APs."""
    batches = []
    for size in (5, 7, 6):
        data = torch.randn(size, 3, 2, 2, generator=g)
        target = (torch.rand(size, 20, generator=g) < 0.35).float()
        wgt = (torch.rand(size, 20, generator=g) < 0.85).float()
        batches.append((data, target, wgt))
    target = torch.cat([b[1] for b in batches])
    wgt = torch.cat([b[2] for b in batches])
    # Every class has a valid positive and a valid negative in the whole set.
    for c in range(20):
        target[c % 18, c], wgt[c % 18, c] = 1.0, 1.0
        target[(c + 1) % 18, c], wgt[(c + 1) % 18, c] = 0.0, 1.0
    start = 0
    for i, (data, _, _) in enumerate(batches):
        size = data.shape[0]
        batches[i] = (data, target[start:start + size].clone(), wgt[start:start + size].clone())
        start += size
    return batches


@pytest.mark.weight(2)
@pytest.mark.number("4.3")
def test_eval_dataset_map_whole_set(student, set_mode):
    """eval_dataset_map: sigmoid scores, AP over the whole test set (not per batch)"""
    g = torch.Generator().manual_seed(25)
    batches = _batches(g)
    weight, bias = torch.randn(20, 12, generator=g), torch.randn(20, generator=g)
    nn = student.import_library("torch.nn")
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 20))
    model.load_state_dict({"1.weight": weight, "1.bias": bias})
    set_mode(model, False)
    call = "eval_dataset_map(Linear model, 'cpu', 3 batches of 5, 7 and 6 images)"
    got = student.metrics.eval_dataset_map(model, "cpu", batches)
    check(isinstance(got, (list, tuple)) and len(got) == 2, f"expected (ap, mAP), got {got!r:.80}", call=call)
    data = torch.cat([b[0] for b in batches]).flatten(1)
    scores = torch.sigmoid(data @ weight.T + bias)
    gt, valid = torch.cat([b[1] for b in batches]), torch.cat([b[2] for b in batches])
    from sklearn.metrics import average_precision_score

    def ap_per_class(s):
        return np.array([average_precision_score(gt[valid[:, c] > 0, c].numpy(), s[valid[:, c] > 0, c].numpy())
                         for c in range(20)])

    expected, tie_broken = ap_per_class(scores), ap_per_class(scores - 1e-5 * gt)  # the handout's tie-break
    ap = np.asarray([float(v) for v in got[0]])
    check(ap.shape == (20,), f"expected 20 AP values, got {ap.shape}", call=call)
    ok = np.allclose(ap, expected, rtol=1e-5) or np.allclose(ap, tie_broken, rtol=1e-5)
    if not ok:
        assert_close(torch.from_numpy(ap), torch.from_numpy(expected), call=call, rtol=1e-5, what="ap",
                     hint="apply a sigmoid (not a softmax) to the logits, gather every batch, then call compute_ap "
                          "once on the whole set")
    assert_close(float(got[1]), float(ap.mean()), call=call, rtol=1e-6, what="mAP", hint="mAP = mean of the APs")


