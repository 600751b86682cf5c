"""Public tests of the settings A-E: which backbone each setting starts from, and which it freezes."""

from __future__ import annotations

import pytest
import torch
import torchvision

from grader.compare import check
from grader.data.byol_pretraining import make_office_home
from grader.student import module_info, student_raises

PROBES = ("conv1.weight", "bn1.running_var", "layer4.1.conv2.weight")


def _checkpoints(folder) -> dict[str, dict]:
    """A supervised checkpoint (a whole ResNet-18, fc included) and a BYOL one (the backbone alone)."""
    states = {}
    for seed, kind in ((1, "supervised"), (2, "ssl")):
        torch.manual_seed(seed)
        network = torchvision.models.resnet18(weights=None)
        with torch.no_grad():
            network.bn1.running_var.uniform_(0.5, 2.0)
        if kind == "ssl":
            network.fc = torch.nn.Identity()
        states[kind] = network.state_dict()
        torch.save(states[kind], folder / f"{kind}.pth")
    return states


def _setup(folder):
    make_office_home(folder / "office", {"train": 2, "val": 1}, image_size=16, seed=3)
    states = _checkpoints(folder)
    return str(folder / "office"), {k: str(folder / f"{k}.pth") for k in states}, states


def _seeded_initialisation(seed: int) -> tuple[dict, torch.Tensor]:
    """What ``torch.manual_seed(seed)`` then ``build_classifier("resnet18")`` initialises: the backbone and the head."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = torchvision.models.resnet18(weights=None)
        head = torch.nn.Linear(512, 65)
    return network.state_dict(), head.weight.detach()


def _probe(model) -> dict[str, torch.Tensor]:
    backbone = model.backbone
    return {"conv1.weight": backbone.conv1.weight, "bn1.running_var": backbone.bn1.running_var,
            "layer4.1.conv2.weight": backbone.layer4[1].conv2.weight}


@pytest.mark.weight(2)
@pytest.mark.number("6.1")
@pytest.mark.sandbox(call_timeout=120)
def test_run_setting_starts_from_the_right_backbone(student, sandbox_tmp_path):
    """run_setting: setting A starts from scratch, B/D from the supervised and C/E from the BYOL backbone"""
    office, paths, states = _setup(sandbox_tmp_path)
    source = {"A": None, "B": "supervised", "C": "ssl", "D": "supervised", "E": "ssl"}
    for name, kind in source.items():
        call = f"run_setting({name!r}, office, checkpoints, arch='resnet18', epochs=0, image_size=16)"
        accuracy, model = student.settings_table.run_setting(name, office, paths, arch="resnet18", epochs=0,
                                                             batch_size=4, image_size=16)
        check(isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0,
              f"expected an accuracy in [0, 1], got {accuracy!r}", call=call)
        probe = _probe(model)
        for other in ("supervised", "ssl"):
            same = all(torch.equal(probe[k], states[other][k]) for k in PROBES)
            check(same == (other == kind), f"setting {name} should start from "
                  f"{'a random initialisation' if kind is None else f'the {kind} checkpoint'}, but its backbone "
                  f"{'equals' if same else 'differs from'} the {other} checkpoint", call=call,
                  hint="A: none; B, D: checkpoints['supervised']; C, E: checkpoints['ssl']")
        frozen = name in "DE"
        flags = {flag for _, _, flag, _ in module_info(model.backbone)["parameters"]}
        check(flags == {not frozen}, f"setting {name}: backbone requires_grad should all be {not frozen}, "
              f"got {sorted(flags)}", call=call, hint="D and E freeze the backbone; A, B and C train the full model")


@pytest.mark.weight(1)
@pytest.mark.number("6.2")
@pytest.mark.sandbox(call_timeout=120)
def test_run_setting_frozen_training(student, sandbox_tmp_path):
    """run_setting D trains the head on a backbone that stays as loaded; A is seeded first; bad settings refused"""
    office, paths, states = _setup(sandbox_tmp_path)
    call = "run_setting('D', office, checkpoints, arch='resnet18', epochs=1, batch_size=4, image_size=16)"
    accuracy, model = student.settings_table.run_setting("D", office, paths, arch="resnet18", epochs=1,
                                                         batch_size=4, image_size=16)
    check(isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0, f"expected an accuracy in [0, 1], got {accuracy!r}",
          call=call)
    probe = _probe(model)
    for key in PROBES:
        check(torch.equal(probe[key], states["supervised"][key]), f"backbone {key} changed during frozen training",
              call=call)
    # Seeded before the classifier is built: setting A's backbone and head are those of seed 5.
    call = "run_setting('A', office, checkpoints, arch='resnet18', epochs=0, image_size=16, seed=5)"
    _, model = student.settings_table.run_setting("A", office, paths, arch="resnet18", epochs=0, batch_size=4,
                                                  image_size=16, seed=5)
    seeded_backbone, seeded_head = _seeded_initialisation(5)
    probe = _probe(model)
    for key, value, expected in (("backbone.conv1.weight", probe["conv1.weight"], seeded_backbone["conv1.weight"]),
                                 ("backbone.layer4.1.conv2.weight", probe["layer4.1.conv2.weight"],
                                  seeded_backbone["layer4.1.conv2.weight"]),
                                 ("head.weight", model.head.weight, seeded_head)):
        check(torch.equal(value.detach(), expected), f"{key} is not the initialisation that torch.manual_seed(5) then "
              "build_classifier('resnet18') gives", call=call,
              hint="seed torch with `seed` first, then build the classifier (build_classifier), so that a run is "
                   "reproducible")
    with student_raises("ValueError", match="F"):
        student.settings_table.run_setting("F", office, paths, arch="resnet18", epochs=0)
    with student_raises("ValueError", match="supervised"):
        student.settings_table.run_setting("B", office, {"ssl": paths["ssl"]}, arch="resnet18", epochs=0)
