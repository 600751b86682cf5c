"""The reference of byol_pretraining against oracles: float64 hand computations, torchvision, gradcheck."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.transforms import v2

from grader.data.byol_pretraining import make_office_home, write_csv


def tiny(width: int = 6, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


# -- loss ---------------------------------------------------------------------------------------------


@settings(max_examples=40)
@given(batch=st.integers(1, 5), dim=st.integers(1, 8), seed=st.integers(0, 10**6))
def test_byol_loss_is_the_normalised_squared_distance(ref, batch, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    p = torch.randn(batch, dim, generator=generator, dtype=torch.float64) * 3
    z = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    loss = ref.byol.byol_loss(p, z)
    distance = ((p / p.norm(dim=1, keepdim=True) - z / z.norm(dim=1, keepdim=True)) ** 2).sum(1)
    torch.testing.assert_close(loss, distance)
    assert bool(((loss >= -1e-12) & (loss <= 4 + 1e-12)).all())
    torch.testing.assert_close(ref.byol.byol_loss(p * 7.5, z * 0.1), loss)  # scale invariant


def test_byol_loss_gradient_and_stop_gradient(ref):
    generator = torch.Generator().manual_seed(0)
    p = torch.randn(4, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    z = torch.randn(4, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: ref.byol.byol_loss(x, z), (p,))
    ref.byol.byol_loss(p, z).sum().backward()
    assert z.grad is None and p.grad is not None
    with pytest.raises(ValueError, match=r"\[4, 6\].*\[4, 5\]"):
        ref.byol.byol_loss(p, z[:, :5])


def test_symmetric_loss_golden(ref):
    p1, p2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    z1, z2 = torch.tensor([[0.0, 3.0]]), torch.tensor([[2.0, 2.0]])
    # l(p1, z2) = 2 - 2 cos 45deg; l(p2, z1) = 0
    torch.testing.assert_close(ref.byol.symmetric_byol_loss(p1, p2, z1, z2), torch.tensor(2 - math.sqrt(2)))


# -- EMA and schedule ---------------------------------------------------------------------------------


@settings(max_examples=15)
@given(tau=st.floats(0, 1), seed=st.integers(0, 1000))
def test_ema_update_matches_a_float64_loop(ref, tau, seed):
    online, target = tiny(seed=seed), tiny(seed=seed + 1)
    online(torch.randn(3, 3, 4, 4))  # BatchNorm statistics and num_batches_tracked differ
    before_online, before_target = copy.deepcopy(online.state_dict()), copy.deepcopy(target.state_dict())
    ref.byol.ema_update(online, target, tau)
    for name, value in target.state_dict().items():
        if value.is_floating_point():
            expected = tau * before_target[name].double() + (1 - tau) * before_online[name].double()
            torch.testing.assert_close(value.double(), expected, rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(value, before_online[name])
    for name, value in online.state_dict().items():
        assert torch.equal(value, before_online[name])


def test_ema_update_errors_change_nothing(ref):
    online, target = tiny(6), tiny(6, seed=1)
    with pytest.raises(ValueError, match="1.5"):
        ref.byol.ema_update(online, target, 1.5)
    other = nn.Sequential(tiny(6, seed=2), nn.Linear(6, 2))
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(ValueError, match="exists in only one"):
        ref.byol.ema_update(online, other, 0.5)
    with pytest.raises(ValueError, match="shape"):
        ref.byol.ema_update(online, tiny(4), 0.5)
    assert all(torch.equal(v, before[k]) for k, v in other.state_dict().items())


def test_cosine_tau_endpoints_and_monotone(ref):
    values = [ref.byol.cosine_tau(k, 50, 0.99) for k in range(51)]
    assert values[0] == pytest.approx(0.99) and values[-1] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert values[25] == pytest.approx(0.995)
    with pytest.raises(ValueError):
        ref.byol.cosine_tau(51, 50)


# -- BYOL model -----------------------------------------------------------------------------------------


def test_byol_train_step_moves_target_by_ema_only(ref):
    model = ref.byol.BYOL(tiny(6), 6, projection_dim=4, hidden_dim=16, tau=0.8)
    assert all(not p.requires_grad for p in model.target_parameters())
    assert "predictor" not in {name.split(".")[0] for name, _ in model.named_parameters()
                               if name.startswith("target")}
    optimizer = ref.train_byol.build_optimizer(model, lr=0.05)
    assert sum(p.numel() for p in optimizer.param_groups[0]["params"]) == \
        sum(p.numel() for p in model.online_parameters())
    view1, view2 = torch.randn(5, 3, 6, 6), torch.randn(5, 3, 6, 6)
    target_before = [p.detach().clone() for p in model.target_parameters()]
    ref.train_byol.train_step(model, optimizer, view1, view2)
    online_after = [*model.online_encoder.parameters(), *model.online_projector.parameters()]
    for xi, old, theta in zip(model.target_parameters(), target_before, online_after):
        torch.testing.assert_close(xi, 0.8 * old + 0.2 * theta.detach())
        assert xi.grad is None


def test_byol_forward_equals_the_formula(ref):
    model = ref.byol.BYOL(tiny(6), 6, projection_dim=4, hidden_dim=16).eval()
    with torch.no_grad():
        for p in model.target_parameters():
            p.add_(torch.randn_like(p) * 0.3)
    view1, view2 = torch.randn(3, 3, 6, 6), torch.randn(3, 3, 6, 6)

    def normalised(x):
        return x / x.norm(dim=1, keepdim=True)

    with torch.no_grad():
        p1, p2 = (model.predictor(model.online_projector(model.online_encoder(v))) for v in (view1, view2))
        z1, z2 = (model.target_projector(model.target_encoder(v)) for v in (view1, view2))
        expected = (4 - 2 * (normalised(p1) * normalised(z2)).sum(1) - 2 * (normalised(p2) * normalised(z1)).sum(1))
    torch.testing.assert_close(model(view1, view2), expected.mean())


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_byol_accepts_torchvision_resnets(ref, arch, one_torch_thread):
    backbone, feature_dim = ref.byol.resnet_backbone(arch)
    assert feature_dim == {"resnet18": 512, "resnet50": 2048}[arch] and isinstance(backbone.fc, nn.Identity)
    model = ref.byol.BYOL(backbone, feature_dim, projection_dim=32, hidden_dim=64)
    optimizer = ref.train_byol.build_optimizer(model)
    loss = ref.train_byol.train_step(model, optimizer, torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16))
    assert 0 <= loss <= 8
    with pytest.raises(ValueError, match="'vgg16'"):
        ref.byol.resnet_backbone("vgg16")


def test_load_backbone_accepts_common_checkpoint_layouts(ref, tmp_path, one_torch_thread):
    torch.manual_seed(3)
    full = torchvision.models.resnet18(weights=None)
    expected = {k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}
    layouts = {"full": full.state_dict(), "wrapped": {"state_dict": full.state_dict()},
               "parallel": {"model": {"module." + k: v for k, v in expected.items()}}}
    for name, state in layouts.items():
        torch.save(state, tmp_path / f"{name}.pth")
        backbone, _ = ref.byol.resnet_backbone("resnet18")
        ref.byol.load_backbone(backbone, tmp_path / f"{name}.pth")
        assert all(torch.equal(v, expected[k]) for k, v in backbone.state_dict().items()), name
    torch.save({"conv1.weight": expected["conv1.weight"]}, tmp_path / "partial.pth")
    with pytest.raises(RuntimeError, match="Missing key"):
        ref.byol.load_backbone(ref.byol.resnet_backbone("resnet18")[0], tmp_path / "partial.pth")


# -- augmentation -------------------------------------------------------------------------------------


def test_two_views_reproducible_and_leave_the_generator(ref):
    image = (torch.rand(3, 30, 40) * 255).to(torch.uint8)
    augmentation = ref.augmentations.byol_augmentation(16)
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    first = ref.augmentations.two_views(image, augmentation, (1, 2))
    assert torch.equal(torch.random.get_rng_state(), state)
    second = ref.augmentations.two_views(image, augmentation, (1, 2))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], first[1])
    assert first[0].dtype == torch.float32 and tuple(first[0].shape) == (3, 16, 16)
    # The v2 pipeline on a PIL image and on the same image as a tensor agree (up to resampling).
    pil = v2.functional.to_pil_image(image)
    from_pil = ref.augmentations.two_views(pil, ref.augmentations.eval_transform(30), (1, 2))[0]
    from_tensor = ref.augmentations.two_views(image, ref.augmentations.eval_transform(30), (1, 2))[0]
    assert (from_pil - from_tensor).abs().mean() < 0.05


def test_augmentation_statistics(ref):
    """Over many seeds, the random branches fire at the seed's rates."""
    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    image[0] = 200  # a red image: grey views have equal channels after un-normalising
    augmentation = ref.augmentations.byol_augmentation(8)
    mean = torch.tensor(ref.augmentations.MEAN)[:, None, None]
    std = torch.tensor(ref.augmentations.STD)[:, None, None]
    grey = 0
    for seed in range(200):
        torch.manual_seed(seed)
        raw = augmentation(image) * std + mean
        grey += bool((raw[0] - raw[1]).abs().max() < 1e-3)
    assert 0.1 < grey / 200 < 0.3  # RandomGrayscale(p=0.2)


# -- CSV ------------------------------------------------------------------------------------------------


@settings(max_examples=15)
@given(rows=st.lists(st.tuples(st.integers(0, 10**6), st.from_regex(r"[A-Za-z_]{1,8}\.jpg", fullmatch=True),
                               st.integers(0, 64)), max_size=12, unique_by=lambda r: r[0]))
def test_read_office_csv_round_trip(ref, tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    write_csv(path, rows)
    records = ref.officehome.read_office_csv(path)
    assert [(r.id, r.filename, r.label) for r in records] == rows
    assert [r.line for r in records] == list(range(2, len(rows) + 2))


def test_office_home_dataset_missing_image(ref, tmp_path):
    split = make_office_home(tmp_path / "office", {"val": 5}, image_size=8)["val"]
    (split.image_dir / split.rows[2][1]).unlink()
    line = 4  # header, then rows 0, 1, 2
    with pytest.raises(FileNotFoundError, match=rf"line {line}\b"):
        ref.officehome.OfficeHomeDataset(tmp_path / "office" / "val.csv", tmp_path / "office" / "val")


# -- downstream -----------------------------------------------------------------------------------------


def test_frozen_classifier_is_frozen_for_good(ref):
    model = ref.downstream.Classifier(tiny(6), 6, num_classes=4, dropout=0.0, freeze_backbone=True)
    before = copy.deepcopy(model.backbone.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    batches = [(torch.randn(4, 3, 5, 5), torch.randint(0, 4, (4,))) for _ in range(3)]
    ref.downstream.train_one_epoch(model, batches, optimizer)
    assert all(torch.equal(v, before[k]) for k, v in model.backbone.state_dict().items())
    assert model.training and not model.backbone.training
    unfrozen = ref.downstream.Classifier(tiny(6), 6, num_classes=4)
    before = copy.deepcopy(unfrozen.backbone.state_dict())
    ref.downstream.train_one_epoch(unfrozen, batches, ref.downstream.build_optimizer(unfrozen, 0.1))
    assert not torch.equal(before["1.running_mean"], unfrozen.backbone.state_dict()["1.running_mean"])


def test_format_table_lists_the_settings_in_order(ref):
    table = ref.settings_table.format_table({"E": 0.2084, "A": 0.5271, "C": 0.5505})
    lines = table.splitlines()
    assert lines[0].startswith("| setting") and len(lines) == 5
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["A", "C", "E"]
    assert "0.2084" in lines[-1] and "fix the backbone" in lines[-1]


# -- the command lines (slow: ResNet-18 end to end) ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_command_lines_end_to_end(ref, tmp_path, one_torch_thread):
    from grader.data.byol_pretraining import make_mini

    make_mini(tmp_path / "mini", count=8, num_classes=4, image_size=16)
    make_office_home(tmp_path / "office", {"train": 8, "val": 4}, num_classes=65, image_size=16)
    history = ref.train_byol.main(["--data", str(tmp_path / "mini" / "train"), "--arch", "resnet18",
                                   "--image-size", "16", "--epochs", "2", "--batch-size", "4", "--workers", "0",
                                   "--hidden-dim", "32", "--projection-dim", "16", "--device", "cpu",
                                   "--out", str(tmp_path / "run")])
    assert len(history) == 2
    assert {p.name for p in (tmp_path / "run").glob("*.pth")} == {"backbone_last.pth", "backbone_epoch002.pth"}
    accuracies = ref.settings_table.main(["--office", str(tmp_path / "office"), "--mini", str(tmp_path / "mini"),
                                          "--ssl-checkpoint", str(tmp_path / "run" / "backbone_last.pth"),
                                          "--supervised-epochs", "1", "--arch", "resnet18", "--epochs", "1",
                                          "--batch-size", "4", "--image-size", "16", "--workers", "0",
                                          "--device", "cpu", "--out", str(tmp_path / "settings.md")])
    assert sorted(accuracies) == list("ABCDE") and all(0 <= a <= 1 for a in accuracies.values())
    assert len((tmp_path / "settings.md").read_text().splitlines()) == 7
    assert (tmp_path / "settings.supervised.pth").is_file()
