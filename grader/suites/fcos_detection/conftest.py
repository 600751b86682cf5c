"""Shared pieces of the FCOS suite: stand-in modules.

Public and hidden tests use the fixtures below; nothing here imports the
reference (students run the public tests without it).

* The course's starter code builds ``models.regnet_x_400mf(pretrained=True)``,
  which downloads ImageNet weights; the manifest's ``offline_weights`` has the
  engine seed stand-ins for them (``grader.weights``), and no test depends on
  trunk weights.
* Stand-in backbones are small ``nn.Sequential`` convolution stacks wrapped by
  ``torchvision``'s ``create_feature_extractor``, built twice with the same
  weights: once in the student's process (a proxy) and once here. They make
  the tests of the FPN, the head and the losses independent of each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from grader.compare import GradingFailure
from grader.sandbox.client import RemoteObject, StudentCodeError, StudentImportError, handle_of
from grader.student import module_info

FPN_STRIDES = {"p3": 8, "p4": 16, "p5": 32}
TRUNK_CHANNELS = (64, 160, 400)


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Small tensors, busy shared machines: one intra-op thread is faster here (and restored afterwards).

    The sandboxed worker already runs with ``OMP_NUM_THREADS=1``; this covers the
    trusted process and ``--no-sandbox`` runs, where several threads fighting
    over two loaded cores made the suite several times slower.
    """


@pytest.fixture(autouse=True)
def _hold_proxy_releases(request: pytest.FixtureRequest) -> Any:
    """Keep the student's objects alive until the test ends.

    Work-around for an engine bug: when student code returns an object that
    already has a proxy (``model.train()`` returns ``model``), the trusted
    side makes a second proxy with the same id, and whichever dies first
    releases the object in the worker, so the other one stops working
    ("unknown object id"). Releases are held here and sent after the test.
    """
    if "student" not in request.fixturenames:
        yield
        return
    connection = request.getfixturevalue("student").connection
    held: list[tuple[int, int]] = []
    connection._release = lambda hid, generation: held.append((hid, generation))
    try:
        yield
    finally:
        del connection._release
        shared = {handle_of(proxy).id for (generation, _), proxy in _shared(connection).items()
                  if generation == connection.generation and isinstance(proxy, RemoteObject)}
        for hid, generation in held:
            if hid not in shared:
                connection._release(hid, generation)


def _shared(connection: Any) -> dict:
    """Student objects that several tests use (``FCOSKit.shared``), kept on the connection."""
    cache = connection.__dict__.get("_fcos_suite_shared")
    if cache is None:
        cache = connection.__dict__["_fcos_suite_shared"] = {}
    return cache


def seeded_state(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Deterministic weights for every parameter of ``module``: std ``1 / sqrt(fan_in)``, biases 0.1."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, p in module.state_dict().items():
        fan_in = p[0].numel() if p.dim() > 1 else 100
        state[name] = torch.randn(p.shape, generator=generator, dtype=p.dtype) * fan_in ** -0.5
    return state


@dataclass
class Twin:
    """The same stand-in module in the student's process (``remote``) and here (``local``)."""

    remote: Any
    local: nn.Module


def _conv_stack(channels: tuple[int, int, int], seed: int) -> tuple[nn.Sequential, dict]:
    stack = nn.Sequential(
        nn.Conv2d(3, channels[0], kernel_size=8, stride=8),
        nn.Conv2d(channels[0], channels[1], kernel_size=2, stride=2),
        nn.Conv2d(channels[1], channels[2], kernel_size=2, stride=2),
    )
    state = seeded_state(stack, seed)
    stack.load_state_dict(state)
    return stack, state


def _twin_extractor(student: Any, channels: tuple[int, int, int], names: tuple[str, str, str], seed: int,
                    strides: dict | None = None) -> Twin:
    from torchvision.models.feature_extraction import create_feature_extractor

    nodes = {"0": names[0], "1": names[1], "2": names[2]}
    local_stack, state = _conv_stack(channels, seed)
    local = create_feature_extractor(local_stack, return_nodes=nodes)
    torch_nn = student.import_library("torch.nn")
    remote_stack = torch_nn.Sequential(
        torch_nn.Conv2d(3, channels[0], kernel_size=8, stride=8),
        torch_nn.Conv2d(channels[0], channels[1], kernel_size=2, stride=2),
        torch_nn.Conv2d(channels[1], channels[2], kernel_size=2, stride=2),
    )
    remote_stack.load_state_dict(state)
    extractor = student.import_library("torchvision.models.feature_extraction")
    remote = extractor.create_feature_extractor(remote_stack, return_nodes=nodes)
    if strides is not None:
        local.fpn_strides = dict(strides)
        remote.fpn_strides = dict(strides)
    return Twin(remote, local)


def parameters_under(module: Any, names: tuple[str, ...]) -> dict:
    """``module_info`` of the named submodules of ``module``, merged, with names prefixed by the submodule's.

    ``module_info(module)`` lists each parameter once, under the name it was
    registered with first; a student who also keeps a layer under a second
    attribute (``self.conv_c3`` beside ``self.fpn_params["c3"]``) would hide it
    from a test that looks under the starter's names. Asking each starter-named
    submodule for its own parameters finds them whatever else refers to them.
    A submodule the student did not create contributes nothing.
    """
    merged: dict = {"parameters": [], "num_parameters": 0}
    for name in names:
        try:
            sub = getattr(module, name)
        except (AttributeError, StudentCodeError):
            continue
        if sub is None:
            continue
        info = module_info(sub)
        merged["parameters"] += [(f"{name}.{p[0]}", *p[1:]) for p in info["parameters"]]
        merged["num_parameters"] += info["num_parameters"]
    return merged


class FCOSKit:
    """Helpers that build stand-ins and move weights between differently named modules."""

    def __init__(self, student: Any):
        self.student = student

    parameters_under = staticmethod(parameters_under)

    @staticmethod
    def stems_without_final_relu(head: nn.Module) -> nn.Module:
        """A local head whose ``stem_cls`` and ``stem_box`` end with their last conv, not a ReLU (in place).

        The starter asks for "a stem of alternating 3x3 convolution layers and RELU
        activation modules": conv, ReLU, conv, ReLU (the FCOS tower, the reference)
        or conv, ReLU, conv. Both readings earn the head's and the losses' points.
        """
        for name in ("stem_cls", "stem_box"):
            stem = getattr(head, name)
            if len(stem) and isinstance(stem[-1], nn.ReLU):
                setattr(head, name, nn.Sequential(*list(stem)[:-1]))
        return head

    def shared(self, key: str, factory: Any) -> Any:
        """A student object built once per worker by ``factory()`` and reused by the tests that ask for ``key``.

        Only for tests that do not depend on what earlier tests did to it (a
        model used for ``inference`` or inspected for shapes). Built again
        after a worker crash.
        """
        connection = self.student.connection
        cache = _shared(connection)
        entry = (connection.generation, key)
        if entry not in cache:
            for stale in [k for k in cache if k[0] != connection.generation]:
                del cache[stale]
            cache[entry] = factory()
        return cache[entry]

    def trunk(self, seed: int = 0) -> Twin:
        """A stand-in for the RegNet trunk: features ``c3, c4, c5`` with 64/160/400 channels, strides 8/16/32."""
        return _twin_extractor(self.student, TRUNK_CHANNELS, ("c3", "c4", "c5"), seed)

    def fpn(self, channels: int, seed: int = 0) -> Twin:
        """A stand-in for the whole backbone with FPN: features ``p3, p4, p5``, and ``fpn_strides``."""
        return _twin_extractor(self.student, (channels,) * 3, ("p3", "p4", "p5"), seed, FPN_STRIDES)

    def fcos(self, num_classes: int, fpn_channels: int, stem_channels: list[int]) -> Any:
        """The student's ``FCOS(num_classes, fpn_channels, stem_channels)``, built once per worker.

        Raises:
            StudentCodeError: what the student's constructor raised (every time it is asked for).
        """
        def build() -> Any:
            try:
                return self.student.one_stage_detector.FCOS(num_classes=num_classes, fpn_channels=fpn_channels,
                                                             stem_channels=stem_channels)
            except StudentImportError:
                raise
            except StudentCodeError as exc:
                return exc
        built = self.shared(f"fcos({num_classes}, {fpn_channels}, {stem_channels})", build)
        if isinstance(built, StudentCodeError):
            raise built
        return built

    def inference_fcos(self, num_classes: int, fpn_channels: int, stem_channels: list[int]) -> Any:
        """An FCOS whose ``inference`` the tests call: the student's own, or, when its constructor fails, a bare one.

        ``FCOS.inference`` needs nothing of what ``__init__`` builds but
        ``backbone.fpn_strides`` (and ``num_classes``): a constructor that
        fails (a bug in the head, say) must not cost the inference tests their
        points as well. The bare model is the student's class made without
        its ``__init__`` (``object.__new__``, then ``nn.Module.__init__``), with
        a stand-in backbone that has ``fpn_strides``, and no head.
        """
        try:
            return self.fcos(num_classes, fpn_channels, stem_channels)
        except StudentImportError:
            raise
        except StudentCodeError:
            return self.shared(f"bare-fcos({num_classes}, {fpn_channels})",
                               lambda: self.bare_fcos(num_classes, fpn_channels))

    def fcos_for_losses(self, num_classes: int, fpn_channels: int, stem_channels: list[int], seed: int = 0) -> Any:
        """A fresh FCOS whose training ``forward`` (the losses) a test grades, with a stand-in FPN.

        The student's ``FCOS(...)`` with its backbone replaced by ``fpn(fpn_channels, seed)``
        (the losses must not depend on the student's FPN, which other tests grade).
        When the constructor fails (a bug in the head's ``__init__``, say), the
        student's FCOS class without its ``__init__`` gets the stand-in FPN and
        ``bare_head``: the student's head class with layers built as the starter
        names them, so that ``FCOS.forward`` and ``FCOSPredictionNetwork.forward``
        are still graded.
        """
        try:
            model = self.student.one_stage_detector.FCOS(num_classes=num_classes, fpn_channels=fpn_channels,
                                                         stem_channels=stem_channels)
        except StudentImportError:
            raise
        except StudentCodeError:
            model = self.bare_fcos(num_classes, fpn_channels, seed)
            model.pred_net = self.bare_head(num_classes, fpn_channels, stem_channels)
            return model
        model.backbone = self.fpn(fpn_channels, seed=seed).remote
        return model

    def bare_head(self, num_classes: int, in_channels: int, stem_channels: list[int]) -> Any:
        """The student's ``FCOSPredictionNetwork`` class without its ``__init__``, with the starter's layers.

        ``stem_cls`` and ``stem_box``: ``nn.Sequential`` of 3x3 convs (padding 1)
        and ReLUs with ``stem_channels`` outputs; ``pred_cls``, ``pred_box`` and
        ``pred_ctr``: 3x3 convs to ``num_classes``, 4 and 1 channels (the names the
        starter says to keep). Only its ``forward`` is the student's.
        """
        builtins = self.student.import_library("builtins")
        torch_nn = self.student.import_library("torch.nn")
        head = builtins.getattr(builtins.object, "__new__")(self.student.one_stage_detector.FCOSPredictionNetwork)
        object.__setattr__(head, "_label", "one_stage_detector.FCOSPredictionNetwork (made without its __init__)")
        builtins.getattr(torch_nn.Module, "__init__")(head)
        for stem in ("stem_cls", "stem_box"):
            layers, previous = [], in_channels
            for channels in stem_channels:
                layers += [torch_nn.Conv2d(previous, channels, kernel_size=3, padding=1), torch_nn.ReLU()]
                previous = channels
            builtins.setattr(head, stem, torch_nn.Sequential(*layers))
        for name, out in (("pred_cls", num_classes), ("pred_box", 4), ("pred_ctr", 1)):
            builtins.setattr(head, name, torch_nn.Conv2d(previous, out, kernel_size=3, padding=1))
        return head

    def bare_fcos(self, num_classes: int, fpn_channels: int, seed: int = 0) -> Any:
        """The student's FCOS class, instantiated without its ``__init__``, with a stand-in backbone and no head."""
        builtins = self.student.import_library("builtins")
        torch_nn = self.student.import_library("torch.nn")
        cls = self.student.one_stage_detector.FCOS
        model = builtins.getattr(builtins.object, "__new__")(cls)
        object.__setattr__(model, "_label", "one_stage_detector.FCOS (made without its __init__)")  # for messages
        builtins.getattr(torch_nn.Module, "__init__")(model)
        model.num_classes = num_classes
        model.backbone = self.fpn(fpn_channels, seed=seed).remote
        model.pred_net = None
        builtins.setattr(model, "_normalizer", 150)
        return model

    @staticmethod
    def parameter_groups(info: dict, groups: tuple[str, ...]) -> dict[str, list[tuple[str, tuple]]]:
        """``module_info`` parameters (name, shape), by the first component of their names."""
        found: dict[str, list[tuple[str, tuple]]] = {g: [] for g in groups}
        for name, shape, _grad, _dtype in info["parameters"]:
            head = name.split(".", 1)[0]
            if head in found:
                found[head].append((name, tuple(shape)))
        return found

    @staticmethod
    def head_weights(num_classes: int, in_channels: int, stem_channels: list[int], seed: int,
                     cls_bias: float = -2.0) -> list[tuple[str, torch.Tensor]]:
        """Seeded weights of an FCOS head, named and ordered as ``FCOSPredictionNetwork`` lists them."""
        generator = torch.Generator().manual_seed(seed)
        weights = []
        for stem in ("stem_cls", "stem_box"):
            previous = in_channels
            for index, channels in enumerate(stem_channels):
                std = (2.0 / (9 * previous)) ** 0.5
                weights.append((f"{stem}.{2 * index}.weight", torch.randn(channels, previous, 3, 3, generator=generator)
                                * std))
                weights.append((f"{stem}.{2 * index}.bias", torch.randn(channels, generator=generator) * 0.1))
                previous = channels
        for name, out in (("pred_cls", num_classes), ("pred_box", 4), ("pred_ctr", 1)):
            std = (1.0 / (9 * previous)) ** 0.5
            weights.append((f"{name}.weight", torch.randn(out, previous, 3, 3, generator=generator) * std))
            bias = torch.randn(out, generator=generator) * 0.3
            if name == "pred_cls":
                bias = bias + cls_bias
            if name == "pred_box":
                bias = bias + 1.0
            weights.append((f"{name}.bias", bias))
        return weights

    def load_head(self, remote_head: Any, weights: list[tuple[str, torch.Tensor]], what: str) -> dict[str, str]:
        """Load ``weights`` (a reference-ordered list) into a student's ``FCOSPredictionNetwork``.

        Parameters are paired group by group (``stem_cls``, ``stem_box``,
        ``pred_cls``, ``pred_box``, ``pred_ctr``) in the order the student's
        module lists them, which must have the same shapes.

        Returns:
            dict[str, str]: the student's parameter name -> the name in ``weights``.
        """
        groups = ("stem_cls", "stem_box", "pred_cls", "pred_box", "pred_ctr")
        info = parameters_under(remote_head, groups)
        theirs = self.parameter_groups(info, groups)
        ours: dict[str, list[tuple[str, torch.Tensor]]] = {g: [] for g in groups}
        for name, tensor in weights:
            ours[name.split(".", 1)[0]].append((name, tensor))
        state, names = {}, {}
        for group in groups:
            shapes_theirs = [s for _, s in theirs[group]]
            shapes_ours = [tuple(t.shape) for _, t in ours[group]]
            if shapes_theirs != shapes_ours:
                raise GradingFailure(
                    f"{what}: the parameters of your {group} have shapes {shapes_theirs}, expected {shapes_ours} "
                    f"(convs of the sizes the docstring gives, with biases, in order).")
            for (their_name, _), (our_name, tensor) in zip(theirs[group], ours[group]):
                state[their_name] = tensor
                names[their_name] = our_name
        total = module_info(remote_head)
        extra = [n for n, *_ in total["parameters"] if n.split(".", 1)[0] not in groups] \
            if total["num_parameters"] > info["num_parameters"] else []
        if extra:
            raise GradingFailure(f"{what}: your FCOSPredictionNetwork has parameters outside stem_cls, stem_box, "
                                 f"pred_cls, pred_box and pred_ctr: {extra[:5]}")
        remote_head.load_state_dict(state)
        return names


@contextlib.contextmanager
def course_location_order(reference: Any) -> Iterator[None]:
    """The reference's ``FCOS`` with its locations in the order of the course's own test.

    The course's ``test_get_fpn_location_coords`` expects p3 to start ``[[4, 4],
    [4, 12], [4, 20], ...]``: y varying fastest, a column-major walk over the
    map, while the starter's head flattens ``(H, W)`` row by row. A student who
    satisfies the course's test and flattens as the starter says pairs each
    prediction with the transposed location's target: that is the course's own
    convention, so the loss tests accept what the reference computes with it
    (this context) as well as the consistent pairing.
    """
    osd = reference.one_stage_detector
    original = osd.get_fpn_location_coords

    def column_major(shape_per_fpn_level: dict, strides_per_fpn_level: dict, *args: Any, **kwargs: Any) -> dict:
        rows = original(shape_per_fpn_level, strides_per_fpn_level, *args, **kwargs)
        return {level: value.reshape(shape_per_fpn_level[level][-2], shape_per_fpn_level[level][-1], 2)
                .transpose(0, 1).reshape(-1, 2) for level, value in rows.items()}

    osd.get_fpn_location_coords = column_major
    try:
        yield
    finally:
        osd.get_fpn_location_coords = original


@pytest.fixture
def course_order(reference: Any) -> Any:
    """``with course_order():`` runs the reference with the course test's location order (``course_location_order``)."""
    return lambda: course_location_order(reference)


@pytest.fixture
def fcos_kit(student: Any) -> FCOSKit:
    """Stand-in modules and weight transfer for the FCOS tests (see ``FCOSKit``)."""
    return FCOSKit(student)
