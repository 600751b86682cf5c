"""Learnability (slow): the reference learns to localize and to detect on synthetic shapes.

Set: ``grader.data.weak_localization`` with the five ``SHAPE_CLASSES`` (one colour, five
shapes: the class is the shape drawn), 1-2 objects per image. Nothing is pretrained: the
localizer starts from Xavier initialisation, and WSDDN starts from the localizer's trunk
(as the handout starts from ImageNet AlexNet).

1. ``LocalizerAlexNet`` trained with ``task_1.train`` (max pooling + BCE, image labels only):
   for a validation (image, present class) pair, the arg-max of the class's heat map, upsampled
   to the image, lies inside a ground-truth box of that class for >= 80 % of pairs.
2. ``WSDDN`` trained with ``task_2.train_model`` (image labels only): its test mAP@0.5 is well
   above a random baseline that scores the same proposals at random.

Run: ``python -m pytest tests/weak_localization -m slow -s`` (numbers and times are printed;
the README records them).
"""

from __future__ import annotations

import time
from argparse import Namespace

import pytest
import torch

from grader.data.weak_localization import SHAPE_CLASSES, make_weak_localization_data

SPLITS = {"trainval": 480, "test": 120}
IMAGE_SIZE = 160
EPOCHS = 14


def localization_hits(ref, model, dataset, data) -> tuple[int, int]:
    """(hits, pairs): heat-map arg-max inside a box of its class, over (image, present class) pairs."""
    model.eval()
    hits = pairs = 0
    with torch.no_grad():
        for index, image_id in enumerate(data.voc.splits["test"]):
            record = data.voc.images[image_id]
            maps = model(dataset[index]["image"][None])[0]
            for name in {o.name for o in record.objects}:
                cls = ref.voc_dataset.VOCDataset.get_class_index(name)
                heat = ref.task_1.upsample_heatmap(maps[cls], (record.height, record.width))
                row, col = divmod(int(heat.argmax()), record.width)
                boxes = [o.box for o in record.objects if o.name == name]  # 1-based inclusive
                hits += any(x1 <= col + 1 <= x2 and y1 <= row + 1 <= y2 for x1, y1, x2, y2 in boxes)
                pairs += 1
    return hits, pairs


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("wl_shapes")
    return make_weak_localization_data(root, SPLITS, seed=2022, classes=SHAPE_CLASSES, objects_per_image=(1, 2),
                                       object_size=(0.3, 0.55), difficult_rate=0.0, per_object=6, random_boxes=14)


@pytest.fixture(scope="module")
def localizer(ref, shapes):
    torch.manual_seed(0)
    train_set = ref.voc_dataset.VOCDataset("trainval", image_size=IMAGE_SIZE, data_dir=str(shapes.data_dir))
    loader = torch.utils.data.DataLoader(train_set, batch_size=32, shuffle=True, drop_last=True,
                                         collate_fn=ref.task_1.collate_images,
                                         generator=torch.Generator().manual_seed(0))
    model = ref.AlexNet.localizer_alexnet(pretrained=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    start = time.time()
    history = []
    for epoch in range(EPOCHS):
        history.append(ref.task_1.train(loader, model, ref.task_1.localization_loss, optimizer, epoch, print_freq=0))
    return model, history, time.time() - start


@pytest.mark.slow
def test_localizer_heatmaps_find_the_objects(ref, shapes, localizer):
    model, history, seconds = localizer
    val_set = ref.voc_dataset.VOCDataset("test", image_size=IMAGE_SIZE, data_dir=str(shapes.data_dir))
    loader = torch.utils.data.DataLoader(val_set, batch_size=32, collate_fn=ref.task_1.collate_images)
    m1, m2 = ref.task_1.validate(loader, model, ref.task_1.localization_loss)
    hits, pairs = localization_hits(ref, model, val_set, shapes)
    untrained_hits, _ = localization_hits(ref, ref.AlexNet.localizer_alexnet(pretrained=False), val_set, shapes)
    print(f"\nlocalizer: {EPOCHS} epochs in {seconds:.0f} s; train loss {history[0]['loss']:.3f} -> "
          f"{history[-1]['loss']:.3f}; validation metric1 {m1:.3f}, metric2 {m2:.3f}; heat-map max inside the "
          f"object: {hits}/{pairs} = {hits / pairs:.3f} (untrained: {untrained_hits / pairs:.3f})")
    assert hits / pairs >= 0.8
    assert m1 > 0.8


@pytest.mark.slow
def test_wsddn_beats_random_boxes(ref, shapes, localizer, tmp_path):
    model, _, _ = localizer
    torch.save({"state_dict": model.state_dict()}, tmp_path / "localizer.pth")
    torch.manual_seed(1)
    top_n = 30
    train_set = ref.voc_dataset.VOCDataset("trainval", image_size=IMAGE_SIZE, top_n=top_n,
                                           data_dir=str(shapes.data_dir))
    test_set = ref.voc_dataset.VOCDataset("test", image_size=IMAGE_SIZE, top_n=top_n, data_dir=str(shapes.data_dir))
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=1, shuffle=True,
                                               generator=torch.Generator().manual_seed(1))
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1)
    net = ref.wsddn.WSDDN(classes=ref.voc_dataset.VOCDataset.CLASS_NAMES, hidden_dim=512)
    copied = ref.task_2.load_pretrained(net, str(tmp_path / "localizer.pth"))
    assert len(copied) == 10  # conv1-conv5 weights and biases
    for name, param in net.named_parameters():
        if name.startswith("features."):
            param.requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9,
                                weight_decay=5e-4)
    args = Namespace(epochs=3, lr_decay_steps=10**9, lr_decay=0.1, disp_interval=100, val_interval=0, vis_images=0)
    start = time.time()
    history = ref.task_2.train_model(net, train_loader, test_loader, optimizer, args)
    seconds = time.time() - start

    # Random baseline: the same proposals, scored at random (uniform per region and class).
    generator = torch.Generator().manual_seed(2)
    detections, truths = [], []
    for item in test_loader:
        rois = item["rois"].reshape(-1, 4)
        scores = torch.rand(rois.shape[0], 20, generator=generator)
        detections.append(ref.task_2.get_detections(scores, rois, 0.05, 0.3))
        truths.append((item["gt_boxes"].reshape(-1, 4), item["gt_classes"].reshape(-1)))
    _, random_map = ref.task_2.calculate_map(detections, truths, num_classes=20)
    final_map = history["map"][-1]
    print(f"\nWSDDN: {args.epochs} epochs in {seconds:.0f} s; loss {history['loss'][0]:.3f} -> "
          f"{history['loss'][-1]:.3f}; test mAP@0.5 per epoch {[round(m, 3) for m in history['map']]}; "
          f"random proposals baseline {random_map:.3f}")
    assert final_map > 2 * random_map and final_map > random_map + 0.15
