"""PASCAL VOC 2007 with selective-search proposals (16-824 Fall 2022 ``voc_dataset.py``).

Folder layout (``data_dir`` is the ``VOC2007`` folder)::

    data_dir/JPEGImages/000005.jpg
    data_dir/Annotations/000005.xml
    data_dir/ImageSets/Main/{split}.txt
    data_dir/selective_search_data/voc_2007_{split}.mat

The ``.mat`` file holds, for the i-th image of the split (in the order of
``{split}.txt``), ``boxes[0][i]`` (K x 4, ``[y_min, x_min, y_max, x_max]``, 1-based
pixel indices, row first!) and ``boxScores[0][i]`` (K x 1).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np
import scipy.io
import torch
import torchvision.transforms as transforms
from PIL import Image
from torch.utils.data import Dataset

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class VOCDataset(Dataset):
    """VOC images with their labels, ground-truth boxes and proposals.

    Args:
        split: ``'trainval'``, ``'test'`` (or any split with a ``.txt`` list and a ``.mat`` file).
        image_size: images are resized to ``image_size x image_size``.
        top_n: number of proposals to return per image (the best ``top_n`` by ``boxScores``).
        data_dir: the ``VOC2007`` folder.
    """

    CLASS_NAMES = ['aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
                   'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
                   'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor']
    INV_CLASS = {name: i for i, name in enumerate(CLASS_NAMES)}

    def __init__(self, split: str = 'trainval', image_size: int = 224, top_n: int = 300,
                 data_dir: str = 'data/VOCdevkit/VOC2007/'):
        super().__init__()
        self.split = split
        self.data_dir = data_dir
        self.size = image_size
        self.top_n = top_n

        self.img_dir = os.path.join(data_dir, 'JPEGImages')
        self.ann_dir = os.path.join(data_dir, 'Annotations')
        self.selective_search_dir = os.path.join(data_dir, 'selective_search_data')
        self.roi_data = scipy.io.loadmat(os.path.join(self.selective_search_dir, f'voc_2007_{split}.mat'))

        split_file = os.path.join(data_dir, 'ImageSets/Main', split + '.txt')
        with open(split_file) as fp:
            self.index_list = [line.strip() for line in fp if line.strip()]
        if self.roi_data['boxes'].size != len(self.index_list):
            raise ValueError(f"{split_file} lists {len(self.index_list)} images but the proposal file has "
                             f"{self.roi_data['boxes'].size}")

        self.anno_list = self.preload_anno()

    @classmethod
    def get_class_name(cls, index: int) -> str:
        """Category name of class ``index`` (0..19)."""
        return cls.CLASS_NAMES[index]

    @classmethod
    def get_class_index(cls, name: str) -> int:
        """Class index of the category ``name``."""
        return cls.INV_CLASS[name]

    def __len__(self) -> int:
        return len(self.index_list)

    def preload_anno(self) -> list:
        """Read every annotation once.

        Returns:
            list of ``[label, weight, gt_class_list, gt_boxes]``, one per image: ``label``
            and ``weight`` are float arrays of shape [20] (label 1 when the class appears;
            weight 0 when every object of that class in the image is ``difficult``, else 1);
            ``gt_class_list`` holds the class index of each object and ``gt_boxes`` its
            ``[xmin, ymin, xmax, ymax]`` divided by the image width / height (VOC's
            1-based pixel indices divided as they are, as in the handout).
        """
        label_list = []
        for index in self.index_list:
            root = ET.parse(os.path.join(self.ann_dir, index + '.xml')).getroot()
            width = int(root.find('size/width').text)
            height = int(root.find('size/height').text)
            label = np.zeros(len(self.CLASS_NAMES))
            seen_easy = np.zeros(len(self.CLASS_NAMES), dtype=bool)
            gt_class_list, gt_boxes = [], []
            for obj in root.iter('object'):
                cls = self.INV_CLASS[obj.find('name').text.strip()]
                label[cls] = 1
                difficult = obj.find('difficult')
                if difficult is None or int(difficult.text) == 0:
                    seen_easy[cls] = True
                box = obj.find('bndbox')
                gt_class_list.append(cls)
                gt_boxes.append([float(box.find('xmin').text) / width, float(box.find('ymin').text) / height,
                                 float(box.find('xmax').text) / width, float(box.find('ymax').text) / height])
            weight = np.where((label == 1) & ~seen_easy, 0.0, 1.0)
            label_list.append([label, weight, gt_class_list, gt_boxes])
        return label_list

    def __getitem__(self, index: int) -> dict:
        """The ``index``-th image of the split.

        Returns:
            dict with
            ``image`` (FloatTensor[3, image_size, image_size]): RGB in [0, 1], resized
            (bilinear), then normalised with the ImageNet mean and std;
            ``label``, ``wgt`` (FloatTensor[20]): see ``preload_anno``;
            ``rois`` (FloatTensor[K, 4]): the image's proposals with the ``top_n`` highest
            ``boxScores`` (all of them when there are fewer; highest score first), as
            ``[x_min, y_min, x_max, y_max]`` normalised to [0, 1]: x divided by the image
            width, y by its height (the ``.mat`` file stores ``[y_min, x_min, y_max, x_max]``);
            ``gt_boxes`` (FloatTensor[G, 4]): ground-truth boxes, normalised the same way;
            ``gt_classes`` (LongTensor[G]): the class of each ground-truth box.
        """
        findex = self.index_list[index]
        img = Image.open(os.path.join(self.img_dir, findex + '.jpg')).convert('RGB')
        width, height = img.size

        img = transforms.ToTensor()(img)
        img = transforms.Resize((self.size, self.size), antialias=True)(img)
        img = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(img)

        label = torch.as_tensor(self.anno_list[index][0], dtype=torch.float32)
        wgt = torch.as_tensor(self.anno_list[index][1], dtype=torch.float32)
        gt_class_list, gt_boxes = self.anno_list[index][2], self.anno_list[index][3]

        # TODO: load the proposals of image `index` from self.roi_data, keep the top_n by
        # "boxScores", and normalise them to [0, 1] as [x_min, y_min, x_max, y_max].
        raise NotImplementedError("TODO: VOCDataset.__getitem__")

        return {
            'image': img,
            'label': label,
            'wgt': wgt,
            'rois': proposals,
            'gt_boxes': torch.as_tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4),
            'gt_classes': torch.as_tensor(gt_class_list, dtype=torch.long),
        }
