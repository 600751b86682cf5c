"""Looking inside trained classifiers: conv1 filters, nearest neighbours, t-SNE.

The 2020 edition's tasks 2.4 (conv1 filter grid) and 5 (nearest neighbours in
feature space, t-SNE), and the t-SNE of S24 Q2: 1000 test images, each coloured
by the mean colour of its active classes, with a legend.

    python analysis.py --model resnet --checkpoint checkpoint-resnet18-epoch50.pth --data-dir DIR --out plots/
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.nn as nn
import torchvision

CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def filter_grid(weight, nrow=8, padding=1):
    """The filters of a convolution as one image.

    Each filter is min-max normalised on its own to [0, 1] (a constant filter
    becomes 0), then the filters are laid out row by row, ``nrow`` per row,
    separated and surrounded by ``padding`` pixels of value 1 (white). Single
    channel filters are repeated into 3 channels. This is
    ``torchvision.utils.make_grid(weight, nrow, padding, normalize=True,
    scale_each=True, pad_value=1.0)``.

    Args:
        weight (Tensor[K, C, h, w]): the weights, C = 1 or 3.
        nrow (int): filters per row.
        padding (int): pixels between filters.

    Returns:
        Tensor[3, H, W] (float32): with ``rows = ceil(K / nrow)``,
        ``H = rows * (h + padding) + padding`` and
        ``W = min(K, nrow) * (w + padding) + padding``.
    """
    raise NotImplementedError("TODO: filter_grid")


def save_filter_grid(weight, path, nrow=12, scale=6):
    """Write ``filter_grid(weight, nrow)`` to ``path`` as a PNG, each pixel a ``scale x scale`` block."""
    from PIL import Image

    grid = filter_grid(weight, nrow=nrow)
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    image = Image.fromarray(array)
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    image.save(path)
    return path


def extract_features(model, images, layer, batch_size=64):
    """The output of one layer of ``model`` for every image, flattened.

    Registers a forward hook on ``dict(model.named_modules())[layer]``, runs the
    model on ``images`` in batches of ``batch_size`` in evaluation mode without
    tracking gradients, and removes the hook. The model's mode (train / eval)
    is restored afterwards.

    Args:
        model (nn.Module): the network.
        images (Tensor[N, C, H, W]): inputs, on the model's device.
        layer (str): a module name, e.g. ``"resnet.avgpool"`` or ``"fc1"``.
        batch_size (int): images per forward pass.

    Returns:
        Tensor[N, D] (float32, on the CPU): the layer's output for each image,
        flattened (``D`` = its number of elements per image).

    Raises:
        ValueError: for an unknown layer name (the message quotes it).
    """
    raise NotImplementedError("TODO: extract_features")


def nearest_neighbors(query, gallery, k):
    """The ``k`` gallery rows closest to each query row (Euclidean distance).

    Args:
        query (Tensor[Q, D]): features of the query images.
        gallery (Tensor[G, D]): features to search.
        k (int): neighbours per query, ``1 <= k <= G``.

    Returns:
        tuple: ``indices`` (LongTensor[Q, k]) of the neighbours, nearest first
        (equal distances: lower index first), and their ``distances``
        (Tensor[Q, k], float64). A query that is also in the gallery finds
        itself first, at distance 0. No Python loop over queries.

    Raises:
        ValueError: when ``k`` is out of range or the feature sizes differ.
    """
    raise NotImplementedError("TODO: nearest_neighbors")


def class_palette(num_classes=20):
    """Tensor[num_classes, 3] of distinct RGB colours in [0, 1] (matplotlib's ``tab20``)."""
    import matplotlib

    colours = matplotlib.colormaps["tab20"].colors
    return torch.tensor([colours[i % len(colours)] for i in range(num_classes)], dtype=torch.float32)


def label_colors(labels, palette):
    """The colour of each image: the mean colour of its active classes.

    Args:
        labels (Tensor[N, C]): 1 for the classes present in each image, else 0.
        palette (Tensor[C, 3]): RGB colour of each class, in [0, 1].

    Returns:
        Tensor[N, 3] (float32): for an image with active classes ``S``, the mean
        of ``palette[c]`` over ``c`` in ``S``; an image with no active class is
        grey ``(0.5, 0.5, 0.5)``. No Python loop over images.
    """
    raise NotImplementedError("TODO: label_colors")


def tsne_embedding(features, seed=0, perplexity=30.0):
    """A 2-D t-SNE of ``features`` (scikit-learn).

    Uses ``sklearn.manifold.TSNE(n_components=2, perplexity=p, init="pca",
    random_state=seed)`` with ``p = min(perplexity, (N - 1) / 3)`` so that small
    sets work too.

    Args:
        features (Tensor | ndarray [N, D]): one row per image, ``N >= 4``.
        seed (int): the same seed gives the same embedding.
        perplexity (float): t-SNE's perplexity for large sets.

    Returns:
        ndarray[N, 2] (float64).
    """
    raise NotImplementedError("TODO: tsne_embedding")


def plot_tsne(embedding, labels, path, class_names=CLASS_NAMES, palette=None):
    """Scatter plot of a 2-D embedding, coloured by ``label_colors``, saved as PNG.

    Args:
        embedding (ndarray | Tensor [N, 2]): the points.
        labels (Tensor[N, C]): active classes of each point.
        path (str): where to write the PNG.
        class_names (Sequence[str]): the C class names, for the legend.
        palette (Tensor[C, 3] | None): class colours; None uses ``class_palette(C)``.

    Returns:
        matplotlib.figure.Figure: one axes whose first collection is the scatter
        (one point per row, face colour = ``label_colors(labels, palette)``) and
        whose legend has one entry per class, in class order, labelled with its
        name and drawn in its palette colour.
    """
    raise NotImplementedError("TODO: plot_tsne")


def _load_model(kind, checkpoint, inp_size):
    if kind == "resnet":
        from train_q2 import ResNet

        model, layer = ResNet(len(CLASS_NAMES)), "resnet.avgpool"
    elif kind == "caffenet":
        from caffe_net import CaffeNet

        model, layer = CaffeNet(len(CLASS_NAMES), inp_size=inp_size), "pool3"
    else:
        from simple_cnn import SimpleCNN

        model, layer = SimpleCNN(len(CLASS_NAMES), inp_size=inp_size, c_dim=3), "fc1"
    if checkpoint:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)  # trainer.save_model: the whole model
        if isinstance(saved, nn.Module):
            model = saved
        else:
            model.load_state_dict(saved)
    return model.eval(), layer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("resnet", "caffenet", "simple"), default="resnet")
    parser.add_argument("--checkpoint", default=None, help="model (or state dict) written by trainer.save_model")
    parser.add_argument("--data-dir", default="data/VOCdevkit/VOC2007/")
    parser.add_argument("--inp-size", type=int, default=224)
    parser.add_argument("--count", type=int, default=1000, help="test images in the t-SNE")
    parser.add_argument("--queries", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--out", default="plots")
    options = parser.parse_args(argv)

    from voc_dataset import VOCDataset

    os.makedirs(options.out, exist_ok=True)
    model, layer = _load_model(options.model, options.checkpoint, options.inp_size)
    dataset = VOCDataset("test", options.inp_size, data_dir=options.data_dir)
    chosen = np.random.default_rng(0).permutation(len(dataset))[: min(options.count, len(dataset))]
    images = torch.stack([dataset[int(i)][0] for i in chosen])
    labels = torch.stack([dataset[int(i)][1] for i in chosen])
    features = extract_features(model, images, layer)
    plot_tsne(tsne_embedding(features), labels, os.path.join(options.out, "tsne.png"))
    indices, _ = nearest_neighbors(features[options.queries], features, k=4)
    for row in indices.tolist():
        names = [dataset.index_list[int(chosen[j])] for j in row]
        print(f"query {names[0]}: neighbours {' '.join(names[1:])}")
    conv1 = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    save_filter_grid(conv1.weight, os.path.join(options.out, "conv1_filters.png"))
    print(f"wrote {options.out}/tsne.png and {options.out}/conv1_filters.png")


if __name__ == "__main__":
    main()
