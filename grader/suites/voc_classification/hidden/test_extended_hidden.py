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


@pytest.mark.weight(1)
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




@pytest.mark.weight(0.5)
@pytest.mark.number("4.5")
def test_eval_dataset_map_last_batch_of_one_and_class_without_ap(student, set_mode):
    """eval_dataset_map: a last batch of one image, and a class without a valid positive (mAP over the others)"""
    g = torch.Generator().manual_seed(45)
    batches = [b for b in _batches(g)]
    # 4 + 6 + 1 images: the 18 of _batches, cut to end in a batch of a single image.
    data = torch.cat([b[0] for b in batches])[:11]
    target = torch.cat([b[1] for b in batches])[:11]
    wgt = torch.cat([b[2] for b in batches])[:11]
    for c in range(19):  # every class but the last has a valid positive and a valid negative among the 11
        target[c % 11, c], wgt[c % 11, c] = 1.0, 1.0
        target[(c + 1) % 11, c], wgt[(c + 1) % 11, c] = 0.0, 1.0
    target[:, 19] = 0.0  # class 19: no positive, no AP
    cuts = [(0, 4), (4, 10), (10, 11)]
    loader = [(data[a:b].clone(), target[a:b].clone(), wgt[a:b].clone()) for a, b in cuts]
    weight, bias = torch.randn(20, 12, generator=g), torch.randn(20, generator=g)
    nn = student.import_library("torch.nn")
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 20))
    model.load_state_dict({"1.weight": weight, "1.bias": bias})
    set_mode(model, False)
    call = "eval_dataset_map(Linear model, 'cpu', 3 batches of 4, 6 and 1 images; class 19 has no positive)"
    got = student.metrics.eval_dataset_map(model, "cpu", loader)
    check(isinstance(got, (list, tuple)) and len(got) == 2, f"expected (ap, mAP), got {got!r:.80}", call=call)
    scores = torch.sigmoid(data.flatten(1) @ weight.T + bias)
    from sklearn.metrics import average_precision_score

    def ap_per_class(s):
        return np.array([average_precision_score(target[wgt[:, c] > 0, c].numpy(), s[wgt[:, c] > 0, c].numpy())
                         for c in range(19)])

    ap = np.asarray([float(v) for v in got[0]])
    check(ap.shape == (20,), f"expected 20 AP values, got {ap.shape}", call=call,
          hint="keep the batch dimension of a batch of one image (no squeeze()) and gather every batch")
    readings = [ap_per_class(scores), ap_per_class(scores - 1e-5 * target)]
    if not any(np.allclose(ap[:19], r, rtol=1e-5) for r in readings):
        assert_close(torch.from_numpy(ap[:19]), torch.from_numpy(readings[0]), call=call, rtol=1e-5, what="ap[:19]",
                     hint="a sigmoid of the logits of every batch (the last one holds a single image), gathered, "
                          "then compute_ap once")
    check(bool(np.isnan(ap[19]) or ap[19] == 0), f"class 19 has no valid positive: its AP must be NaN (or 0.0), got "
                                                 f"{ap[19]}", call=call)
    m = float(got[1])
    check(bool(np.isfinite(m)), f"mAP is {m}: a class without an AP (NaN) must not make the mean NaN", call=call,
          hint="mAP is the mean over the classes that have an AP: np.nanmean(ap)")
    assert_close(m, float(np.nanmean(ap)), call=call, rtol=1e-6, what="mAP",
                 hint="mAP = the mean of the APs of the classes that have one (np.nanmean)")
