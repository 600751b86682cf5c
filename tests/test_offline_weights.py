"""Offline stand-ins for torchvision's pretrained weights (``grader.weights``), as the starter code asks for them."""

from __future__ import annotations

import pytest
import torch

from grader import manifest as manifests
from grader.weights import WeightsError, checkpoint_names, seed_torch_home


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """TORCH_HOME seeded for the three 16-824 trunks; any download attempt fails the test."""
    home = tmp_path / "torch-home"
    seed_torch_home(home, ["resnet18", "alexnet", "regnet_x_400mf"], cache=tmp_path / "cache")
    monkeypatch.setenv("TORCH_HOME", str(home))

    def no_network(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return home


def test_checkpoint_names_are_torchvisions():
    assert checkpoint_names("resnet18") == ["resnet18-5c106cde.pth", "resnet18-f37072fd.pth"]
    assert checkpoint_names("alexnet") == ["alexnet-owt-4df8aa71.pth", "alexnet-owt-7be5be79.pth"]
    assert checkpoint_names("regnet_x_400mf") == ["regnet_x_400mf-62229a5f.pth", "regnet_x_400mf-adf1edd5.pth"]
    with pytest.raises(WeightsError, match="'not_a_model'"):
        checkpoint_names("not_a_model")


def test_the_starters_calls_load_seeded_weights_without_the_network(offline):
    from torch.utils import model_zoo
    from torchvision import models

    resnet = models.resnet18(weights="IMAGENET1K_V1")  # 16-824 S24 train_q2.py
    torch.manual_seed(0)
    fresh = models.resnet18(weights=None)
    assert all(torch.equal(a, b) for a, b in zip(resnet.state_dict().values(), fresh.state_dict().values()))
    regnet = models.regnet_x_400mf(weights=models.RegNet_X_400MF_Weights.IMAGENET1K_V2)  # FCOS, either version
    assert regnet.fc.out_features == 1000
    state = model_zoo.load_url("https://download.pytorch.org/models/alexnet-owt-4df8aa71.pth")  # F22 AlexNet.py
    assert state["features.0.weight"].shape == (64, 3, 11, 11)
    assert models.alexnet(weights="IMAGENET1K_V1").classifier[6].out_features == 1000


def test_seeding_twice_reuses_the_cache_and_the_files(tmp_path):
    first = seed_torch_home(tmp_path / "a", ["resnet18"], cache=tmp_path / "cache")
    cached = list((tmp_path / "cache").iterdir())
    again = seed_torch_home(tmp_path / "b", ["resnet18"], cache=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == cached and len(cached) == 1
    assert first[0].read_bytes() == again[0].read_bytes()
    assert (first[0].stat().st_mode & 0o444) == 0o444


def test_every_manifests_offline_weights_are_real_builders():
    listed = {m.name: m.grading.offline_weights for m in manifests.discover().values()}
    assert listed["fcos_detection"] == ("regnet_x_400mf",) and listed["voc_classification"] == ("resnet18",)
    assert listed["weak_localization"] == ()  # its suite seeds the AlexNet values its tests compare against
    for builders in listed.values():
        for builder in builders:
            assert checkpoint_names(builder)


def test_a_sandboxed_worker_builds_pretrained_models_from_its_seeded_home(tmp_path):
    """What the engine does for a manifest's offline_weights: the worker's TORCH_HOME is its work folder."""
    import os

    from grader.sandbox.process import ProcessConnection, SandboxSettings, default_protected, default_run_as

    course = tmp_path / "course"
    course.mkdir()
    (course / "net.py").write_text("from torchvision import models\n\ndef trunk():\n"
                                   "    return models.resnet18(weights='IMAGENET1K_V1').fc.weight.sum().item()\n")
    for path in (tmp_path, course, course / "net.py"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    workdir = tmp_path / "work"
    seed_torch_home(workdir, ["resnet18"], cache=tmp_path / "cache")
    settings = SandboxSettings(memory_limit=2 * 2**30, protected=default_protected(), run_as=default_run_as(),
                               workdir=workdir)
    conn = ProcessConnection(str(course), ["net"], settings)
    conn.call_timeout = 120
    try:
        value = conn.import_module("net").trunk()
    finally:
        conn.close()
    torch.manual_seed(0)
    from torchvision import models

    assert value == pytest.approx(models.resnet18(weights=None).fc.weight.sum().item(), abs=1e-4)


def test_stand_in_state_dict_is_what_the_starter_loads(offline, tmp_path):
    from torchvision import models

    from grader.weights import stand_in_state_dict

    state = stand_in_state_dict("resnet18", cache=tmp_path / "cache")
    loaded = models.resnet18(weights="IMAGENET1K_V1").state_dict()
    assert set(state) == set(loaded) and all(torch.equal(state[k], loaded[k]) for k in state)
    with pytest.raises(WeightsError, match="'not_a_model'"):
        stand_in_state_dict("not_a_model", cache=tmp_path / "cache")
