"""Q2 hidden tests (16-824 S24): ResNet on one image, and on a batch, agree."""

from __future__ import annotations

import pytest
import torch

from grader.compare import assert_close, check, describe_call

NUM_CLASSES = 20


@pytest.mark.weight(2)
@pytest.mark.number("2.5")
def test_resnet_single_image_matches_batch(student, set_mode):
    """ResNet(20) in eval mode: one image gives [1, 20], equal to its row of a batch of three"""
    call = describe_call("ResNet", NUM_CLASSES)
    model = student.train_q2.ResNet(NUM_CLASSES)
    set_mode(model, False)
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(52))
    batch = model(x)
    check(type(batch) is torch.Tensor and tuple(batch.shape) == (3, NUM_CLASSES),
          f"expected [3, 20] for a batch of 3, got {list(getattr(batch, 'shape', []))}", call=call + "(x[3, 3, 96, 96])")
    for row in range(3):
        single = model(x[row:row + 1])
        where = f"{call}(x[{row}:{row + 1}]) (one image, eval mode)"
        check(type(single) is torch.Tensor and tuple(single.shape) == (1, NUM_CLASSES),
              f"expected [1, 20] for one image, got {list(getattr(single, 'shape', []))}", call=where,
              hint="keep the batch dimension (no squeeze()), and use the running statistics in eval mode")
        assert_close(single[0], batch[row], call=where, rtol=1e-4, atol=1e-5, what="logits",
                     hint="in eval mode each image's logits must not depend on the rest of the batch")
