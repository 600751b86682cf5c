"""The reference of weak_localization against independent oracles (torchvision, scikit-learn, scipy, loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from wl_oracles import (
    box_iou_loop,
    boxes_from_heatmap_loop,
    detections_loop,
    metric1_sklearn,
    metric2_sklearn,
    sort_detections,
    voc_ap_loop,
)


@st.composite
def box_sets(draw, min_count: int = 0, max_count: int = 30, grid: bool = False):
    count = draw(st.integers(min_count, max_count))
    if grid:  # integer corners: many exact ties and touching boxes
        values = draw(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(0, 5), st.integers(0, 5)),
                               min_size=count, max_size=count))
    else:
        coord = st.floats(0, 100, allow_nan=False, width=32)
        side = st.floats(0, 40, allow_nan=False, width=32)
        values = draw(st.lists(st.tuples(coord, coord, side, side), min_size=count, max_size=count))
    return torch.tensor([[x, y, x + w, y + h] for x, y, w, h in values], dtype=torch.float32).reshape(-1, 4)


# -- iou, nms ---------------------------------------------------------------------------------------

@given(box_sets(1), box_sets(1), st.booleans())
def test_iou_matches_torchvision(ref, boxes1, boxes2, grid):
    got = ref.utils.iou(boxes1, boxes2)
    expected = torchvision.ops.box_iou(boxes1, boxes2)
    expected = torch.nan_to_num(expected, nan=0.0)  # torchvision gives NaN for two empty boxes
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert got.shape == (boxes1.shape[0], boxes2.shape[0]) and got.dtype == torch.float32


@given(box_sets(1, 5, grid=True))
def test_iou_of_single_boxes_is_a_scalar_and_matches_a_loop(ref, boxes):
    for i in range(boxes.shape[0]):
        got = ref.utils.iou(boxes[i], boxes[-1])
        assert got.shape == ()
        assert float(got) == pytest.approx(box_iou_loop(boxes[i], boxes[-1]), abs=1e-6)
    assert ref.utils.iou(boxes[0], boxes).shape == (boxes.shape[0],)


def test_iou_edge_cases(ref):
    assert float(ref.utils.iou(torch.tensor([0.0, 0, 1, 1]), torch.tensor([1.0, 1, 2, 2]))) == 0.0  # corner touch
    assert float(ref.utils.iou(torch.tensor([0.0, 0, 1, 1]), torch.tensor([2.0, 2, 3, 3]))) == 0.0  # disjoint
    assert float(ref.utils.iou(torch.tensor([1.0, 1, 1, 1]), torch.tensor([1.0, 1, 1, 1]))) == 0.0  # empty: no NaN
    assert float(ref.utils.iou(torch.tensor([0.0, 0, 2, 2]), torch.tensor([1.0, 0, 3, 2]))) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"\[3\]"):
        ref.utils.iou(torch.zeros(3), torch.zeros(4))
    got = ref.utils.iou(torch.tensor([[0.0, 0, 2, 2]], dtype=torch.float64), torch.tensor([[0.0, 0, 1, 2]]))
    assert got.dtype == torch.float64 and float(got) == 0.5


@settings(max_examples=60)
@given(box_sets(0, 60), st.sampled_from([0.0, 0.05, 0.3]), st.sampled_from([0.3, 0.5, 0.7]), st.integers(0, 2**31))
def test_nms_matches_torchvision(ref, boxes, threshold, iou_threshold, seed):
    scores = torch.rand(boxes.shape[0], generator=torch.Generator().manual_seed(seed))
    got_boxes, got_scores = ref.utils.nms(boxes, scores, threshold, iou_threshold)
    candidates = torch.nonzero(scores > threshold).flatten()
    keep = candidates[torchvision.ops.nms(boxes[candidates], scores[candidates], iou_threshold)]
    torch.testing.assert_close(got_boxes, boxes[keep])
    torch.testing.assert_close(got_scores, scores[keep])


def test_nms_equal_scores_and_boundaries(ref):
    boxes = torch.tensor([[0.0, 0, 2, 2], [0.0, 0, 2, 2.1], [10.0, 10, 12, 12], [0.0, 0, 3, 1], [1.0, 0, 4, 1]])
    scores = torch.tensor([0.5, 0.5, 0.5, 0.04, 0.05])
    kept, kept_scores = ref.utils.nms(boxes, scores)  # defaults 0.05 / 0.3: 0.05 itself is not above
    torch.testing.assert_close(kept, boxes[[0, 2]])
    torch.testing.assert_close(kept_scores, scores[[0, 2]])
    # IoU exactly 0.5 is kept at threshold 0.5
    _, kept_scores = ref.utils.nms(boxes[3:], torch.tensor([0.9, 0.8]), 0.0, 0.5)
    assert kept_scores.tolist() == pytest.approx([0.9, 0.8])
    empty_boxes, empty_scores = ref.utils.nms(torch.zeros(0, 4), torch.zeros(0))
    assert empty_boxes.shape == (0, 4) and empty_scores.shape == (0,)
    with pytest.raises(ValueError, match="3"):
        ref.utils.nms(boxes, torch.zeros(3))


def test_nms_long_suppression_chain(ref):
    """Each box suppresses the next: the greedy result alternates (the fixed-point iteration must converge)."""
    count = 200
    boxes = torch.stack([torch.arange(count) * 0.5, torch.zeros(count), torch.arange(count) * 0.5 + 1,
                         torch.ones(count)], dim=1).float()
    scores = torch.linspace(1, 0.1, count)
    got, _ = ref.utils.nms(boxes, scores, 0.0, 0.3)
    torch.testing.assert_close(got, boxes[torchvision.ops.nms(boxes, scores, 0.3)])


# -- task 1: pooling, loss, metrics -----------------------------------------------------------------

def test_image_level_scores_and_loss(ref):
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 20, 5, 7, generator=generator, dtype=torch.float64) * 4
    target = (torch.rand(3, 20, generator=generator) < 0.3).double()
    pooled = ref.task_1.image_level_scores(maps)
    torch.testing.assert_close(pooled, maps.reshape(3, 20, -1).max(-1).values)
    probability = 1 / (1 + torch.exp(-pooled))
    expected = -(target * torch.log(probability) + (1 - target) * torch.log(1 - probability)).mean()
    torch.testing.assert_close(ref.task_1.localization_loss(maps, target), expected)
    with pytest.raises(ValueError, match=r"\[3, 20\]"):
        ref.task_1.image_level_scores(pooled)


@st.composite
def multilabel(draw, ties: bool):
    images = draw(st.integers(1, 25))
    classes = draw(st.integers(1, 6))
    labels = draw(st.lists(st.lists(st.booleans(), min_size=classes, max_size=classes), min_size=images,
                           max_size=images))
    value = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) if ties else st.floats(0, 1, allow_nan=False)
    scores = draw(st.lists(st.lists(value, min_size=classes, max_size=classes), min_size=images, max_size=images))
    return torch.tensor(scores, dtype=torch.float64), torch.tensor(labels, dtype=torch.float32)


@given(multilabel(ties=True))
def test_metric1_matches_sklearn_with_ties(ref, data):
    scores, labels = data
    assert ref.task_1.metric1(scores, labels) == pytest.approx(metric1_sklearn(scores, labels), abs=1e-12)


@given(multilabel(ties=False))
def test_metric1_matches_sklearn(ref, data):
    scores, labels = data
    assert ref.task_1.metric1(scores.float(), labels) == pytest.approx(metric1_sklearn(scores.float(), labels), abs=1e-6)


def test_metric1_boundary_cases(ref):
    labels = torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 0, 1]])
    equal = torch.full((3, 3), 0.5)
    # class 1 has no positive: left out; class 0: all equal scores -> 2/3; class 2: all positive -> 1
    assert ref.task_1.metric1(equal, labels) == pytest.approx((2 / 3 + 1) / 2)
    assert ref.task_1.metric1(equal, torch.zeros(3, 3)) == 0.0
    assert isinstance(ref.task_1.metric1(equal, labels), float)


@given(multilabel(ties=True), st.sampled_from([0.5, 0.25]))
def test_metric2_matches_sklearn(ref, data, threshold):
    scores, labels = data
    assert ref.task_1.metric2(scores, labels, threshold) == pytest.approx(metric2_sklearn(scores, labels, threshold))


def test_metric2_definition(ref):
    scores = torch.tensor([[0.5, 0.49, 0.9], [0.1, 0.8, 0.2]])
    labels = torch.tensor([[1.0, 1, 0], [1, 1, 0]])
    assert ref.task_1.metric2(scores, labels) == pytest.approx(2 / 4)  # 0.5 counts as found
    assert ref.task_1.metric2(scores, torch.zeros(2, 3)) == 0.0


# -- heat maps ----------------------------------------------------------------------------------------

@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**31))
def test_upsample_heatmap(ref, h, w, height, width, seed):
    score_map = torch.randn(h, w, generator=torch.Generator().manual_seed(seed))
    got = ref.task_1.upsample_heatmap(score_map, (height, width))
    up = F.interpolate(score_map[None, None].double(), size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    constant = bool(score_map.max() == score_map.min()) or bool(up.max() == up.min())
    expected = torch.zeros_like(up) if constant else (up - up.min()) / (up.max() - up.min())
    torch.testing.assert_close(got, expected.float(), rtol=1e-5, atol=1e-5)
    assert got.dtype == torch.float32


def test_overlay_heatmap(ref):
    import matplotlib

    generator = torch.Generator().manual_seed(1)
    image, heat = torch.rand(3, 6, 5, generator=generator), torch.rand(6, 5, generator=generator)
    colours = torch.from_numpy(matplotlib.colormaps["jet"](heat.numpy())[..., :3]).permute(2, 0, 1).float()
    torch.testing.assert_close(ref.task_1.overlay_heatmap(image, heat, alpha=0.0), image)
    torch.testing.assert_close(ref.task_1.overlay_heatmap(image, heat, alpha=1.0), colours)
    torch.testing.assert_close(ref.task_1.overlay_heatmap(image, heat, 0.3), 0.7 * image + 0.3 * colours)


def blobs(height: int, width: int, centres: list[tuple[float, float, float]]) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    total = torch.zeros(height, width, dtype=torch.float64)
    for cy, cx, sigma in centres:
        total = torch.maximum(total, torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2)))
    return total.float()


@given(st.lists(st.tuples(st.floats(0, 40), st.floats(0, 50), st.floats(0.5, 6)), min_size=0, max_size=5),
       st.sampled_from([0.3, 0.5, 0.8]))
def test_boxes_from_heatmap_matches_scipy(ref, centres, threshold):
    heat = blobs(40, 50, centres)
    got = ref.task_1.boxes_from_heatmap(heat, threshold)
    expected = boxes_from_heatmap_loop(heat.numpy(), threshold)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])


def test_boxes_from_heatmap_two_blobs(ref):
    heat = torch.zeros(10, 12)
    heat[1:4, 2:5] = 0.9
    heat[6:9, 7:11] = 1.0
    heat[5, 0] = 0.2  # below the threshold
    boxes, scores = ref.task_1.boxes_from_heatmap(heat, 0.5)
    assert boxes.tolist() == [[7.0, 6.0, 11.0, 9.0], [2.0, 1.0, 5.0, 4.0]]
    assert scores.tolist() == pytest.approx([1.0, 0.9])
    heat[4, 5] = heat[5, 6] = 0.6  # a diagonal bridge: one component under 8-connectivity
    boxes, _ = ref.task_1.boxes_from_heatmap(heat, 0.5)
    assert boxes.tolist() == [[2.0, 1.0, 11.0, 9.0]]
    empty = ref.task_1.boxes_from_heatmap(torch.zeros(4, 4), 0.5)
    assert empty[0].shape == (0, 4) and empty[1].shape == (0,)


# -- task 2: detections and AP ------------------------------------------------------------------------

@st.composite
def scored_regions(draw):
    regions = draw(st.integers(0, 40))
    classes = draw(st.integers(1, 5))
    boxes = draw(box_sets(regions, regions, grid=draw(st.booleans())))
    seed = draw(st.integers(0, 2**31))
    probs = torch.rand(regions, classes, generator=torch.Generator().manual_seed(seed)) ** 3
    return probs, boxes


@settings(max_examples=40)
@given(scored_regions(), st.sampled_from([0.0, 0.05, 0.2]), st.sampled_from([0.3, 0.5]))
def test_get_detections_matches_per_class_loop(ref, data, thresh, nms_threshold):
    probs, rois = data
    got = ref.task_2.get_detections(probs, rois, thresh, nms_threshold)
    expected = detections_loop(probs, rois, thresh, nms_threshold)
    for g, e in zip(sort_detections(*got), sort_detections(*expected)):
        torch.testing.assert_close(g, e)


@st.composite
def detection_sets(draw, classes: int = 4):
    """Images with ground truth and noisy detections around it (plus random false positives)."""
    images = draw(st.integers(0, 6))
    seed = draw(st.integers(0, 2**31))
    generator = torch.Generator().manual_seed(seed)
    detections, truths = [], []
    for _ in range(images):
        count = int(torch.randint(0, 5, (1,), generator=generator))
        xy = torch.rand(count, 2, generator=generator) * 50
        gt = torch.cat([xy, xy + 5 + torch.rand(count, 2, generator=generator) * 30], 1)
        gt_labels = torch.randint(0, classes, (count,), generator=generator)
        repeats = torch.randint(0, 4, (count,), generator=generator)
        det = gt.repeat_interleave(repeats, 0) + torch.randn(int(repeats.sum()), 4, generator=generator) * 4
        det_labels = gt_labels.repeat_interleave(repeats, 0)
        flip = torch.rand(det_labels.shape, generator=generator) < 0.15
        det_labels = torch.where(flip, torch.randint(0, classes, det_labels.shape, generator=generator), det_labels)
        extra = int(torch.randint(0, 3, (1,), generator=generator))
        xy = torch.rand(extra, 2, generator=generator) * 60
        det = torch.cat([det, torch.cat([xy, xy + 10], 1)])
        det_labels = torch.cat([det_labels, torch.randint(0, classes, (extra,), generator=generator)])
        scores = torch.rand(det.shape[0], generator=generator)
        if draw(st.booleans()):
            scores = (scores * 4).round() / 4  # ties
        detections.append((det, scores, det_labels))
        truths.append((gt, gt_labels))
    return detections, truths


@settings(max_examples=80)
@given(detection_sets())
def test_calculate_map_matches_voc_loop(ref, data):
    detections, truths = data
    aps, mean_ap = ref.task_2.calculate_map(detections, truths, num_classes=4)
    expected_aps, expected_map = voc_ap_loop(detections, truths, 4)
    np.testing.assert_allclose(aps, expected_aps, rtol=1e-9, atol=1e-12)
    assert mean_ap == pytest.approx(expected_map, abs=1e-12)
    assert aps.dtype == np.float64 and aps.shape == (4,)


def test_calculate_map_hand_computed(ref):
    gt = [(torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), torch.tensor([0, 0])),
          (torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([1]))]
    # image 0, class 0: a hit (0.9), a duplicate of it (0.8, false positive), the second box (0.7)
    # image 1: class 0 false positive (0.95); class 1 missed entirely
    dets = [(torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 31]]), torch.tensor([0.9, 0.8, 0.7]),
             torch.tensor([0, 0, 0])),
            (torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0.95]), torch.tensor([0]))]
    aps, mean_ap = ref.task_2.calculate_map(dets, gt, num_classes=3)
    # class 0 ranks: FP, TP, FP, TP -> precision 0, 1/2, 1/3, 2/4; recall steps at ranks 2 and 4
    assert aps[0] == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert aps[1] == 0.0 and math.isnan(aps[2])
    assert mean_ap == pytest.approx(0.25)
    assert ref.task_2.calculate_map([], [], num_classes=2)[1] == 0.0


# -- networks ----------------------------------------------------------------------------------------

def test_localizer_output_sizes_and_parameters(ref):
    torch.manual_seed(0)
    model = ref.AlexNet.localizer_alexnet()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 512, 512)).shape == (1, 20, 29, 29)
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 20, 11, 11)
    assert sum(p.numel() for p in model.parameters()) == 3_130_708
    alexnet = torchvision.models.alexnet(weights=None)
    assert [tuple(v.shape) for v in model.features.state_dict().values()] == \
        [tuple(v.shape) for v in alexnet.features.state_dict().values()]
    robust = ref.AlexNet.localizer_alexnet_robust()
    with torch.no_grad():
        assert robust.eval()(torch.randn(1, 3, 512, 512)).shape == (1, 20, 29, 29)


def test_localizer_init_pretrained_and_xavier(ref, tmp_path):
    torch.manual_seed(1)
    alexnet = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet.pth"
    torch.save(alexnet.state_dict(), path)
    for factory in (ref.AlexNet.localizer_alexnet, ref.AlexNet.localizer_alexnet_robust):
        model = factory(pretrained=str(path))
        for key, value in alexnet.features.state_dict().items():
            torch.testing.assert_close(model.features.state_dict()[key], value)
        convs = [m for m in model.classifier if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 3
        for conv in convs:
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
            assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.1)
            assert float(conv.bias.detach().abs().max()) == 0.0
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        ref.AlexNet.localizer_alexnet(pretrained=str(tmp_path / "nowhere.pth"))


def test_robust_dropout_only_in_training(ref):
    torch.manual_seed(2)
    model = ref.AlexNet.localizer_alexnet_robust()
    plain = ref.AlexNet.localizer_alexnet()
    plain.load_state_dict({k: v for k, v in zip(plain.state_dict(), model.state_dict().values())})
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x), model(x))
        model.eval()
        torch.testing.assert_close(model(x), plain.eval()(x))


def test_wsddn_streams_and_loss(ref):
    torch.manual_seed(3)
    net = ref.wsddn.WSDDN(hidden_dim=64)
    net.eval()
    image = torch.randn(1, 3, 224, 224)
    rois = torch.tensor([[0.0, 0, 100, 100], [50, 60, 200, 180], [10, 10, 220, 220], [0, 0, 100, 100]])
    with torch.no_grad():
        prob = net(image, rois)
        assert prob.shape == (4, 20)
        torch.testing.assert_close(prob[0], prob[3])  # same region, same scores
        hidden = net.classifier(net.roi_pool(net.features(image), [rois]).flatten(1))
        expected = torch.softmax(net.score_fc(hidden), 1) * torch.softmax(net.bbox_fc(hidden), 0)
        torch.testing.assert_close(prob, expected)
        assert bool((prob.sum(0) <= 1 + 1e-6).all())
    labels = torch.zeros(20)
    labels[[2, 5]] = 1
    image_scores = prob.sum(0).clamp(0, 1)
    expected_loss = F.binary_cross_entropy(image_scores, labels, reduction="sum")
    torch.testing.assert_close(net.build_loss(prob, labels.view(20, 1)), expected_loss)
    net.train()
    out = net(image, rois, labels[None])
    torch.testing.assert_close(net.loss, net.build_loss(out, labels.view(20, -1)))
    net.loss.backward()
    assert net.features[0].weight.grad is not None


def test_wsddn_roi_pool_scale(ref):
    """RoI pooling reads the feature cells under the box (spatial scale 1/16)."""
    torch.manual_seed(4)
    net = ref.wsddn.WSDDN(hidden_dim=32).eval()
    image = torch.randn(1, 3, 512, 512)
    rois = torch.tensor([[32.0, 48, 224, 160], [0, 0, 511, 511]])
    with torch.no_grad():
        features = net.features(image)
        pooled = net.roi_pool(features, [rois])
    expected = torchvision.ops.roi_pool(features, [rois], (6, 6), 1 / 16)
    torch.testing.assert_close(pooled, expected)
    assert float(pooled[0].max()) <= float(features[0, :, 3:11, 2:15].amax()) + 1e-6
