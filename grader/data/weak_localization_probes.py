"""Stand-in networks that the weak_localization suite builds inside the student's process.

The 16-824 starter leaves the student's training and test loops to call the network
in their own way (``model(input)`` in ``task_1.train``; ``model(image, rois, target)``
with ``rois`` in whatever container and scale the student chose in ``task_2.test_model``).
To grade what those loops do with the network's output (pooling and loss; threshold,
NMS and AP), the suite hands them one of these instead of the student's network:

* :class:`RecordingLocalizer`: a small fixed network with ``LocalizerAlexNet``'s output
  (20 score maps of 29 x 29 for any input) that keeps every output it gives, with its
  gradient, so that the grader can read ``d loss / d maps`` after the student's
  ``loss.backward()``.
* :class:`RecordingOptimizer`: an optimizer that changes nothing and notes the gradient at each
  ``step()``, so that the grader can tell whether the student's loop steps on each batch's gradient.
* :class:`TableDetector`: gives, for each image of a known set (recognised by its
  pixels), a fixed ``cls_prob`` table of ``[N_roi, 20]``, whatever the other arguments.

Only torch is imported here, so that the module loads in the student's process.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class RecordingLocalizer(nn.Module):
    """Score maps ``[N, num_classes, side, side]`` from a fixed 1 x 1 convolution of the pooled image.

    Every output is kept (``outputs``) with ``retain_grad()``, so its ``.grad`` holds what the
    student's loss sent back. It has ``features`` and ``classifier`` like ``LocalizerAlexNet``
    (a student's logging code may call them).

    Args:
        num_classes (int): number of score maps.
        side (int): side of the maps (29: ``LocalizerAlexNet`` on a 512 x 512 image).
        seed (int): seed of the fixed weights.
    """

    def __init__(self, num_classes: int = 20, side: int = 29, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.features = nn.Sequential(nn.AdaptiveAvgPool2d((side, side)), nn.Conv2d(3, 16, 1))
        self.classifier = nn.Conv2d(16, num_classes, 1)
        with torch.no_grad():
            # Scores of a few units: a sigmoid of them is not 0 or 1 in float32 (whose gradient would vanish).
            for module, scale in ((self.features[1], 1.5), (self.classifier, 0.3)):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * scale)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.3)
        self.outputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.classifier(torch.tanh(self.features(x)) * 2.0)
        if maps.requires_grad:
            maps.retain_grad()
        self.outputs.append(maps)
        return maps

    def recorded(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """``(maps, grad)`` of every output, detached, on the CPU, in float64."""
        return [(m.detach().cpu().double(), None if m.grad is None else m.grad.detach().cpu().double())
                for m in self.outputs]


class RecordingOptimizer(torch.optim.SGD):
    """An SGD with learning rate 0 (it changes nothing) that notes, at every ``step()``, the gradient of
    the probe's ``classifier.bias`` and how many outputs the probe had given by then.

    ``d loss / d classifier.bias`` of one batch is the sum of ``d loss / d maps`` over the batch and the
    map positions, which the grader reads from the probe's outputs: so it can tell whether each step
    used the gradient of its own batch only (``zero_grad`` before, ``backward`` before ``step``).
    Registers itself as ``model.optimizer``.
    """

    def __init__(self, model: RecordingLocalizer):
        super().__init__(model.parameters(), lr=0.0)
        self.__dict__["_probe"] = model  # not a parameter group; no recursion through the module
        self.steps: list[tuple[int, torch.Tensor | None]] = []
        model.optimizer = self

    def step(self, closure: Any = None) -> Any:
        grad = self._probe.classifier.bias.grad
        self.steps.append((len(self._probe.outputs), None if grad is None else grad.detach().cpu().double().clone()))
        return super().step(closure)

    def recorded_steps(self) -> list[tuple[int, torch.Tensor | None]]:
        """``(outputs given before the step, d loss / d classifier.bias at the step)`` of every step."""
        return list(self.steps)


class TableDetector(nn.Module):
    """``cls_prob`` of a known image, looked up by its pixels.

    Args:
        images (list[Tensor[3, H, W]]): the images the student's loop will pass (as its data set
            returns them).
        tables (list[Tensor[N_i, C]]): the ``cls_prob`` to return for each image.
    """

    n_classes = 20

    def __init__(self, images: list[torch.Tensor], tables: list[torch.Tensor]):
        super().__init__()
        self.register_buffer("images", torch.stack([torch.as_tensor(i, dtype=torch.float32) for i in images]))
        self.tables = [torch.as_tensor(t, dtype=torch.float32) for t in tables]
        self.anchor = nn.Parameter(torch.zeros(1))  # so that next(model.parameters()) works
        self.cross_entropy = None
        self.calls = 0

    @property
    def loss(self) -> Any:
        return self.cross_entropy

    def build_loss(self, cls_prob: torch.Tensor, label_vec: torch.Tensor) -> torch.Tensor:
        """The starter's WSDDN loss (a student's test loop may log it): BCE of the clamped region sums."""
        image_scores = cls_prob.sum(dim=0).clamp(0.0, 1.0)
        labels = torch.as_tensor(label_vec).reshape(-1).to(image_scores)
        return nn.functional.binary_cross_entropy(image_scores, labels, reduction="sum")

    def forward(self, image: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        x = torch.as_tensor(image).detach().float().cpu().reshape(-1, *self.images.shape[1:])[0]
        distance = (self.images - x).abs().flatten(1).amax(1)
        index = int(distance.argmin())
        if float(distance[index]) > 1e-3:
            raise ValueError("the grader's stand-in network was given an image that is not one of the data "
                             "set's (was it changed after VOCDataset returned it?)")
        return self.tables[index].to(torch.as_tensor(image).device) + 0 * self.anchor.to(
            torch.as_tensor(image).device)
