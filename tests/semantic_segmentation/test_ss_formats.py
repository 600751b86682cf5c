"""Mask formats, synthetic data, models and the inference script of the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from grader.data.semantic_segmentation import SAT_PALETTE, make_idd, make_satellite


def course_read_masks(folder) -> np.ndarray:
    """The DLCV course's read_masks rule, written out (valid colours only)."""
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".png"))
    masks = []
    for path in files:
        rgb = (np.asarray(Image.open(path).convert("RGB")) >= 128).astype(int)
        code = 4 * rgb[..., 0] + 2 * rgb[..., 1] + rgb[..., 2]
        mask = np.full(code.shape, -1)
        for value, cls in ((3, 0), (6, 1), (5, 2), (2, 3), (1, 4), (7, 5), (0, 6)):
            mask[code == value] = cls
        masks.append(mask)
    return np.stack(masks)


def test_every_colour_code(ref):
    values = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    rgb = torch.stack(torch.meshgrid(values, values, values, indexing="ij"), -1).reshape(1, -1, 3)
    code = (4 * (rgb[..., 0] >= 128).long() + 2 * (rgb[..., 1] >= 128).long() + (rgb[..., 2] >= 128).long())[0]
    ok = code != 4
    got = ref.mask_utils.rgb_to_mask(rgb[:, ok])
    lut = torch.tensor([6, 4, 3, 0, -1, 2, 1, 5])
    assert torch.equal(got[0], lut[code[ok]])
    with pytest.raises(ValueError, match=r"red code.*row 0, col 1.*\(128, 0, 127\)"):
        ref.mask_utils.rgb_to_mask(torch.tensor([[[0, 0, 0], [128, 0, 127], [255, 0, 0]]], dtype=torch.uint8))


def test_satellite_folder_round_trip(ref, tmp_path):
    folder = make_satellite(tmp_path / "sat", 4, seed=3, size=(64, 96), cell=16)
    expected = np.stack([folder.masks[n] for n in folder.names])
    np.testing.assert_array_equal(ref.mask_utils.read_masks(tmp_path / "sat"), expected)
    np.testing.assert_array_equal(course_read_masks(tmp_path / "sat"), expected)
    dataset = ref.seg_dataset.SatelliteDataset(tmp_path / "sat")
    assert len(dataset) == 4 and dataset.names == folder.names
    image, mask = dataset[2]
    assert image.shape == (3, 64, 96) and image.dtype == torch.float32
    assert torch.equal(mask, torch.from_numpy(folder.masks["0002"]))
    ref.mask_utils.write_mask(tmp_path / "again.png", mask)
    assert torch.equal(ref.mask_utils.read_mask(tmp_path / "again.png"), mask)
    # the same folder twice is the same bytes
    make_satellite(tmp_path / "sat2", 4, seed=3, size=(64, 96), cell=16)
    assert (tmp_path / "sat/0001_sat.jpg").read_bytes() == (tmp_path / "sat2/0001_sat.jpg").read_bytes()
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[1, 2] = (200, 10, 10)
    Image.fromarray(red).save(tmp_path / "sat2" / "0009_mask.png")
    with pytest.raises(ValueError, match="0009_mask.png"):
        ref.mask_utils.read_masks(tmp_path / "sat2")


def test_idd_folder_and_mappings(ref, tmp_path):
    folder = make_idd(tmp_path / "idd", {"train": 3, "val": 2}, seed=1, size=(45, 80), ext="png")
    dataset = ref.seg_dataset.IDDDataset(tmp_path / "idd", "val", ref.seg_dataset.JointTransform(size=None))
    assert [p.name for p in dataset.images] == [r[0].name for r in folder.splits["val"]]
    image, mask = dataset[1]
    lut = {level3: i for i, level3 in enumerate(ref.mask_utils.IDD_KEPT_LEVEL3_IDS)}
    expected = np.vectorize(lambda v: lut.get(int(v), 255))(folder.splits["val"][1][2])
    np.testing.assert_array_equal(mask.numpy(), expected)
    assert image.shape == (3, 45, 80)
    names = ref.mask_utils.CITYSCAPES_TRAIN_CLASSES
    mapped = ref.mask_utils.cityscapes_to_idd(torch.arange(19))
    for train_id, idd in enumerate(mapped.tolist()):
        assert (idd == 255) == (names[train_id] == "terrain")
        if idd != 255:
            assert ref.mask_utils.IDD_CLASSES[idd] == names[train_id]
    logits = torch.randn(2, 19, 3, 3)
    idd_logits = ref.mask_utils.cityscapes_logits_to_idd(logits)
    best = logits.argmax(1)
    not_terrain = best != 9
    assert not_terrain.any()
    assert torch.equal(ref.mask_utils.cityscapes_to_idd(best)[not_terrain], idd_logits.argmax(1)[not_terrain])
    counts = ref.seg_dataset.class_distribution(dataset, 18)
    assert int(counts.sum()) == sum(int((m[1] != 255).sum()) for m in dataset)


def test_fcn32s_trunk_is_torchvision_vgg16(ref):
    vgg = torchvision.models.vgg16(weights=None).features
    model = ref.seg_models.FCN32s(num_classes=7, width=1.0)
    assert {k: v.shape for k, v in vgg.state_dict().items()} == {k: v.shape for k, v in model.features.state_dict().items()}
    total = sum(p.numel() for p in model.parameters())
    assert total == ref.seg_models.fcn32s_num_parameters(7, 1.0) == 134_489_927
    assert not model.upsample.weight.requires_grad  # FCN32s' final upsampling stays bilinear
    bn = torchvision.models.vgg16_bn(weights=None).features
    model_bn = ref.seg_models.FCN32s(num_classes=7, width=1.0, batch_norm=True)
    assert {k: v.shape for k, v in bn.state_dict().items()} == {k: v.shape for k, v in model_bn.features.state_dict().items()}


@settings(max_examples=40)
@given(st.integers(1, 80), st.integers(1, 80))
def test_fcn32s_output_size_for_any_size(ref, height, width):
    model = ref.seg_models.FCN32s(num_classes=3, width=1 / 16).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, height, width)).shape == (1, 3, height, width)


def test_bilinear_upsampling_keeps_constant_maps(ref):
    model = ref.seg_models.FCN32s(num_classes=2, width=1 / 16)
    scores = torch.ones(1, 2, 4, 4)
    up = model.upsample(scores)
    assert up.shape == (1, 2, 128, 128)
    torch.testing.assert_close(up[..., 32:96, 32:96], torch.ones(1, 2, 64, 64))


@pytest.mark.slow
def test_fcn32s_loads_full_vgg16_checkpoint(ref, tmp_path):
    """fc6/fc7 of a torchvision VGG16 checkpoint become conv6/conv7 (the FCN paper's conversion)."""
    vgg = torchvision.models.vgg16(weights=None).eval()
    path = tmp_path / "vgg16.pth"
    torch.save(vgg.state_dict(), path)
    model = ref.seg_models.FCN32s(num_classes=7, backbone_weights=path).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        features = model.features(x)
        torch.testing.assert_close(features, vgg.features(x))
        fc7 = model.head[:5](features)  # conv6, ReLU, dropout, conv7, ReLU
        expected = vgg.classifier[:5](torch.flatten(vgg.avgpool(vgg.features(x)), 1))
        torch.testing.assert_close(fc7[:, :, 3, 3], expected, rtol=1e-4, atol=1e-4)


def test_deeplabv3_checkpoint_for_other_classes(ref, tmp_path):
    """A 21-class checkpoint (e.g. COCO-VOC) loads into a 7-class model, all but the last layer."""
    source = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21,
                                                               aux_loss=True)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "voc.pth")
    model = ref.seg_models.deeplabv3(num_classes=7, checkpoint=tmp_path / "voc.pth")
    assert torch.equal(model.backbone.conv1.weight, source.backbone.conv1.weight)
    assert model.classifier[4].weight.shape[0] == 7
    torch.save({"model": {"unexpected.weight": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="missing"):
        ref.seg_models.deeplabv3(num_classes=7, checkpoint=tmp_path / "bad.pth")


def test_inference_script_end_to_end(ref, tmp_path, capsys):
    make_satellite(tmp_path / "val", 3, seed=5, size=(64, 64))
    model = ref.seg_models.FCN32s(num_classes=7, width=1 / 16)
    torch.save({"arch": "fcn32s", "num_classes": 7, "width": 1 / 16, "model": model.state_dict()}, tmp_path / "m.pt")
    ref.inference.main(["--input_dir", str(tmp_path / "val"), "--output_dir", str(tmp_path / "out"),
                        "--checkpoint", str(tmp_path / "m.pt"), "--device", "cpu"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0000_mask.png", "0001_mask.png", "0002_mask.png"]
    assert "predicting" in capsys.readouterr().err  # the progress bar
    pred = ref.mask_utils.read_masks(tmp_path / "out")
    with Image.open(tmp_path / "val" / "0001_sat.jpg") as image:
        pixels = ref.seg_dataset.to_float_image(image)
    expected = ref.inference.predict_image(model.eval(), pixels)
    np.testing.assert_array_equal(pred[1], expected.numpy())


def test_plots_and_overlay(ref, tmp_path):
    cm = torch.tensor([[3, 1], [0, 0]])
    drawn = ref.seg_metrics.plot_confusion_matrix(cm, ["a", "b"], tmp_path / "cm.png")
    torch.testing.assert_close(drawn, torch.tensor([[0.75, 0.25], [0.0, 0.0]], dtype=torch.float64))
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    image = torch.full((2, 2, 3), 100, dtype=torch.uint8)
    out = ref.mask_utils.overlay(image, torch.tensor([[0, 255], [6, 5]]), alpha=0.5)
    assert out[0, 1].tolist() == [100, 100, 100] and out[1, 0].tolist() == [50, 50, 50]
    assert out[0, 0].tolist() == [50, 178, 178]  # round(177.5) = 178 (half to even)
    assert ref.mask_utils.mask_to_rgb(torch.arange(7)[None]).tolist()[0] == [list(c) for c in SAT_PALETTE]
