"""BYOL: Bootstrap Your Own Latent (Grill et al., 2020).

An online network (encoder, projector, predictor) learns to predict, from one
view of an image, the projection that a target network (encoder, projector)
gives of another view. The target gets no gradient: after every optimisation
step its weights move towards the online weights by an exponential moving
average ``ξ ← τ·ξ + (1 − τ)·θ``. The loss of one pair is
``2 − 2·cos(q_θ(z_θ), z'_ξ)``, symmetrised over the two views.

Backbones are torchvision ResNets built with ``weights=None`` whose ``fc`` is
replaced by ``nn.Identity`` (ResNet-50 in the course; any ResNet works), and a
backbone checkpoint is the ``state_dict`` of that network alone.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
           "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")


def resnet_backbone(arch: str = "resnet50") -> tuple[nn.Module, int]:
    """A randomly initialised torchvision ResNet without its classifier.

    Args:
        arch (str): a name of ``RESNETS`` (``"resnet18"``, ``"resnet50"``, ...).

    Returns:
        tuple[nn.Module, int]: the network built with ``weights=None`` whose
        ``fc`` is ``nn.Identity()`` (it maps ``Tensor[B, 3, H, W]`` to
        ``Tensor[B, feature_dim]``), and ``feature_dim`` (512 for ResNet-18/34,
        2048 for ResNet-50 and deeper).

    Raises:
        ValueError: for an unknown ``arch`` (the message quotes it and lists ``RESNETS``).
    """
    if arch not in RESNETS:
        raise ValueError(f"unknown backbone {arch!r}; expected one of {', '.join(RESNETS)}")
    network = getattr(torchvision.models, arch)(weights=None)
    feature_dim = network.fc.in_features
    network.fc = nn.Identity()
    return network, feature_dim


def load_backbone(backbone: nn.Module, path: str | Path) -> nn.Module:
    """Load a backbone checkpoint into ``backbone`` (in place) and return it.

    Accepts the ``state_dict`` of the backbone alone (what ``train_byol`` saves),
    that of a whole torchvision ResNet (its ``fc.*`` entries are ignored), a dict
    holding either under ``"state_dict"`` or ``"model"``, and keys prefixed with
    ``"module."`` (``nn.DataParallel``). Anything else must match exactly.

    Raises:
        RuntimeError: when keys are missing or unexpected (from ``load_state_dict``).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if not any(k.startswith("fc.") for k in backbone.state_dict()):
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    backbone.load_state_dict(state)
    return backbone


def mlp(in_dim: int, hidden_dim: int = 4096, out_dim: int = 256) -> nn.Sequential:
    """The projector / predictor of BYOL.

    ``nn.Sequential(Linear(in_dim, hidden_dim), BatchNorm1d(hidden_dim),
    ReLU(inplace=True), Linear(hidden_dim, out_dim))``, both linear layers with a bias.

    Returns:
        nn.Sequential: maps ``Tensor[B, in_dim]`` to ``Tensor[B, out_dim]``.
    """
    raise NotImplementedError("TODO: mlp")


def byol_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """BYOL's regression loss of each pair: ``2 − 2·cos(prediction, target)``.

    Equal to ``‖p/‖p‖ − z/‖z‖‖²``. Normalise with ``F.normalize`` along the last
    dimension (its ``eps`` keeps a zero vector finite). The target is a
    constant: no gradient may flow into ``target`` (detach it), whatever its
    ``requires_grad``.

    Args:
        prediction (Tensor[B, D]): online predictions ``q_θ(z_θ)``, float.
        target (Tensor[B, D]): target projections ``z'_ξ`` of the other view.

    Returns:
        Tensor[B]: the loss of each pair, in ``[0, 4]``.

    Raises:
        ValueError: when the shapes differ or are not 2-D (the message quotes both).
    """
    # Hint: F.normalize(x, dim=-1); the target is a constant (detach it).
    raise NotImplementedError("TODO: byol_loss")


def symmetric_byol_loss(prediction1: Tensor, prediction2: Tensor, target1: Tensor, target2: Tensor) -> Tensor:
    """The symmetrised BYOL loss of a batch.

    View 1's prediction regresses view 2's target projection and vice versa:
    ``mean_b [byol_loss(prediction1, target2) + byol_loss(prediction2, target1)]``
    (the seed's ``L + L~``, averaged over the batch).

    Args:
        prediction1, prediction2 (Tensor[B, D]): online predictions of views 1 and 2.
        target1, target2 (Tensor[B, D]): target projections of views 1 and 2.

    Returns:
        Tensor: a scalar (0-d) tensor, in ``[0, 8]``.
    """
    raise NotImplementedError("TODO: symmetric_byol_loss")


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """Move ``target`` towards ``online`` in place: ``ξ ← τ·ξ + (1 − τ)·θ``.

    Applies to every parameter and to every floating-point buffer (BatchNorm's
    running mean and variance), matched by name. Integer buffers
    (``num_batches_tracked``) are copied from ``online``. Nothing is recorded
    by autograd, and ``online`` is unchanged. ``tau = 1`` leaves the target as
    it is; ``tau = 0`` copies the online network.

    Args:
        online (nn.Module): the online network θ.
        target (nn.Module): the target network ξ, with the same parameter and buffer names and shapes.
        tau (float): the target decay rate, in ``[0, 1]``.

    Raises:
        ValueError: when ``tau`` is outside ``[0, 1]`` (quoting it), or when the
            two networks' parameters or buffers differ in names or shapes
            (quoting the first name that differs).
    """
    # Hint: check every name and shape first, then update in place (mul_ and add_, or lerp_).
    raise NotImplementedError("TODO: ema_update")


def cosine_tau(step: int, total_steps: int, base_tau: float = 0.996) -> float:
    """BYOL's schedule of the target decay rate: ``τ = 1 − (1 − τ_base)·(cos(π·k/K) + 1)/2``.

    ``τ`` rises from ``base_tau`` at step ``k = 0`` to 1 at ``k = K``.

    Args:
        step (int): the current step ``k``, ``0 <= k <= K``.
        total_steps (int): ``K``, the number of optimisation steps, >= 1.
        base_tau (float): ``τ_base``.

    Returns:
        float: ``τ`` at step ``k``.

    Raises:
        ValueError: when ``total_steps < 1`` or ``step`` is outside ``[0, total_steps]`` (quoting the values).
    """
    raise NotImplementedError("TODO: cosine_tau")


class BYOL(nn.Module):
    """Online encoder + projector + predictor, and an EMA target encoder + projector.

    Attributes (these names are part of the interface):
        online_encoder (nn.Module): ``backbone`` itself (``Tensor[B, 3, H, W]`` -> ``Tensor[B, feature_dim]``).
        online_projector (nn.Sequential): ``mlp(feature_dim, hidden_dim, projection_dim)``.
        predictor (nn.Sequential): ``mlp(projection_dim, hidden_dim, projection_dim)``;
            it exists only in the online network.
        target_encoder, target_projector (nn.Module): deep copies of the online
            encoder and projector made in ``__init__``, whose parameters have
            ``requires_grad = False``.
        tau (float): the default target decay rate.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, projection_dim: int = 256,
                 hidden_dim: int = 4096, tau: float = 0.996):
        """Build the online network around ``backbone`` and copy it into the target.

        Raises:
            ValueError: when ``tau`` is outside ``[0, 1]`` (quoting it).
        """
        super().__init__()
        # Hint: copy.deepcopy makes the target; requires_grad_(False) freezes it.
        raise NotImplementedError("TODO: BYOL.__init__")

    def online_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates: online encoder, projector and predictor."""
        raise NotImplementedError("TODO: BYOL.online_parameters")

    def target_parameters(self) -> list[nn.Parameter]:
        """The parameters of the target encoder and projector (updated only by ``update_target``)."""
        raise NotImplementedError("TODO: BYOL.target_parameters")

    def forward(self, view1: Tensor, view2: Tensor) -> Tensor:
        """The symmetrised BYOL loss of two batches of views of the same images.

        Online: ``p_i = predictor(online_projector(online_encoder(view_i)))``.
        Target, computed under ``torch.no_grad()``:
        ``z_i = target_projector(target_encoder(view_i))``. Returns
        ``symmetric_byol_loss(p1, p2, z1, z2)``. Each view may go through the
        networks on its own or both concatenated into one batch (the grader
        accepts either; they differ only in BatchNorm's batch statistics).

        Args:
            view1, view2 (Tensor[B, 3, H, W]): the two views, image ``b`` in row ``b`` of both.

        Returns:
            Tensor: the scalar loss; its gradient reaches only online parameters.
        """
        raise NotImplementedError("TODO: BYOL.forward")

    @torch.no_grad()
    def update_target(self, tau: float | None = None) -> None:
        """One EMA step of the target: ``ema_update`` of the encoder and of the projector.

        Args:
            tau (float | None): the decay rate of this step; None uses ``self.tau``.
        """
        raise NotImplementedError("TODO: BYOL.update_target")
