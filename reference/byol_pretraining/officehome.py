"""Datasets: the Office-Home CSV of the downstream task and the unlabelled pre-training images.

The course's layout (``hw1_data/p2_data``)::

    office/train.csv    id,filename,label        office/train/<filename>
    office/val.csv      id,filename,label        office/val/<filename>
    mini/train/*.jpg    unlabelled images for BYOL
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from augmentations import two_views
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

NUM_CLASSES = 65
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Record:
    """One line of an Office-Home CSV.

    Attributes:
        id (int): the image id.
        filename (str): the image's file name inside the split's folder.
        label (int): the class, in ``[0, num_classes)``; -1 when the CSV has no labels.
        line (int): the 1-based line of the CSV it came from (the header is line 1).
    """

    id: int
    filename: str
    label: int
    line: int


def read_office_csv(path: str | Path, num_classes: int = NUM_CLASSES, labelled: bool = True) -> list[Record]:
    """Parse an Office-Home CSV (``id,filename,label``) strictly.

    The first line is a header naming the columns ``id``, ``filename`` and
    ``label`` in any order (surrounding spaces ignored; other columns are
    allowed and ignored; a UTF-8 byte-order mark is ignored). Every later line
    that is not blank is one image. Fields are stripped of surrounding spaces.
    With ``labelled=False`` (a test split) the ``label`` column may be missing
    or empty, and every label is -1.

    Every error is a ``ValueError`` whose message starts with
    ``"{path}, line {n}: "`` where ``n`` is the 1-based line number in the file
    (the header is line 1; blank lines count), and quotes the bad value:

    - the file is empty or the header lacks a column (line 1);
    - a line has fewer or more fields than the header;
    - ``id`` or ``label`` is not an integer (``"3.0"``, ``"cat"``, ``""``);
    - ``label`` is outside ``[0, num_classes)``;
    - ``filename`` is empty;
    - an ``id`` repeats an earlier one (the message names the earlier line too).

    Args:
        path: the CSV file.
        num_classes (int): labels must lie in ``[0, num_classes)``.
        labelled (bool): whether labels are required.

    Returns:
        list[Record]: one record per image line, in file order.
    """
    # Hint: csv.reader(...).line_num is the file line of the row just read (blank lines included).
    # BEGIN SOLUTION
    path = Path(path)
    records: list[Record] = []
    seen: dict[int, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}, line 1: the file is empty; expected the header 'id,filename,label'")
        columns = [name.strip() for name in header]
        required = ("id", "filename", "label") if labelled else ("id", "filename")
        for name in required:
            if name not in columns:
                raise ValueError(f"{path}, line 1: the header {','.join(header)!r} has no column {name!r}")
        index = {name: columns.index(name) for name in ("id", "filename", "label") if name in columns}
        for row in reader:
            line = reader.line_num
            if not any(field.strip() for field in row):
                continue
            if len(row) != len(columns):
                raise ValueError(f"{path}, line {line}: expected {len(columns)} fields "
                                 f"({','.join(columns)}), got {len(row)}: {','.join(row)!r}")
            fields = {name: row[i].strip() for name, i in index.items()}
            image_id = _integer(fields["id"], "id", path, line)
            filename = fields["filename"]
            if not filename:
                raise ValueError(f"{path}, line {line}: empty filename")
            if labelled or fields.get("label"):
                label = _integer(fields.get("label", ""), "label", path, line)
                if not 0 <= label < num_classes:
                    raise ValueError(f"{path}, line {line}: label {label} is outside [0, {num_classes})")
            else:
                label = -1
            if image_id in seen:
                raise ValueError(f"{path}, line {line}: id {image_id} already appeared on line {seen[image_id]}")
            seen[image_id] = line
            records.append(Record(image_id, filename, label, line))
    return records
    # END SOLUTION


# BEGIN SOLUTION NO PROMPT
def _integer(text: str, column: str, path: Path, line: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}: {column} {text!r} is not an integer") from None
# END SOLUTION


def default_transform() -> v2.Compose:
    """``ToImage()`` then ``ToDtype(torch.float32, scale=True)``: a float tensor in [0, 1]."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file as an RGB ``PIL.Image`` (grey and RGBA images are converted)."""
    with Image.open(path) as image:
        return image.convert("RGB")


class OfficeHomeDataset(Dataset):
    """Office-Home images and labels listed by a CSV.

    Args:
        csv_path: the split's CSV (see ``read_office_csv``).
        image_dir: the folder holding the split's images.
        transform: applied to the RGB ``PIL.Image``; None uses ``default_transform()``.
        num_classes (int): number of classes (65).
        labelled (bool): passed to ``read_office_csv``.

    Attributes:
        records (list[Record]): the CSV's lines, in order.

    Raises:
        ValueError: from ``read_office_csv``.
        FileNotFoundError: when a listed image does not exist; the message
            names the file and the CSV line that lists it.
    """

    def __init__(self, csv_path: str | Path, image_dir: str | Path, transform: Callable[[Any], Any] | None = None,
                 num_classes: int = NUM_CLASSES, labelled: bool = True):
        # BEGIN SOLUTION
        self.csv_path = Path(csv_path)
        self.image_dir = Path(image_dir)
        self.transform = default_transform() if transform is None else transform
        self.num_classes = num_classes
        self.records = read_office_csv(self.csv_path, num_classes, labelled)
        for record in self.records:
            if not (self.image_dir / record.filename).is_file():
                raise FileNotFoundError(f"{self.csv_path}, line {record.line}: image "
                                        f"{self.image_dir / record.filename} does not exist")
        # END SOLUTION

    def __len__(self) -> int:
        """Number of images (lines of the CSV)."""
        # BEGIN SOLUTION
        return len(self.records)
        # END SOLUTION

    def __getitem__(self, index: int) -> tuple[Any, int]:
        """``(transform(image), label)`` of the ``index``-th CSV line (label an ``int``)."""
        # BEGIN SOLUTION
        record = self.records[index]
        return self.transform(load_rgb(self.image_dir / record.filename)), record.label
        # END SOLUTION


class UnlabeledImages(Dataset):
    """Every image in a folder, as pairs of views for BYOL.

    The images are the files of ``root`` (not its subfolders) whose suffix is in
    ``IMAGE_SUFFIXES`` (case-insensitive), sorted by file name.

    Item ``i`` is ``two_views(image_i, transform, seeds)``: both views come from
    image ``i``. With ``seed=None`` the views draw from torch's global random
    generator. With an integer ``seed``, item ``i`` at epoch ``e`` (see
    ``set_epoch``; 0 at first) uses the seeds ``(s, s + 1)`` with
    ``s = seed + 2·(e·len(self) + i)``: reproducible, and no two views of a run
    share a seed. (With ``DataLoader`` workers, ``set_epoch`` reaches them only
    when they are started anew each epoch: ``persistent_workers=False``.)

    Args:
        root: the folder of images.
        transform: makes one view from an RGB ``PIL.Image`` (e.g. ``byol_augmentation()``).
        seed (int | None): see above.

    Attributes:
        files (list[Path]): the images, sorted.

    Raises:
        FileNotFoundError: when ``root`` holds no image (the message names ``root``).
    """

    def __init__(self, root: str | Path, transform: Callable[[Any], Tensor], seed: int | None = None):
        # BEGIN SOLUTION
        self.root = Path(root)
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.files = sorted(p for p in self.root.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) if self.root.is_dir() else []
        if not self.files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.root}")
        # END SOLUTION

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose seeds ``__getitem__`` uses (only matters with a seed)."""
        # BEGIN SOLUTION
        self.epoch = int(epoch)
        # END SOLUTION

    def __len__(self) -> int:
        """Number of images."""
        # BEGIN SOLUTION
        return len(self.files)
        # END SOLUTION

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        """``(view1, view2)`` of image ``index``."""
        # BEGIN SOLUTION
        image = load_rgb(self.files[index])
        if self.seed is None:
            return two_views(image, self.transform)
        first = self.seed + 2 * (self.epoch * len(self.files) + index)
        return two_views(image, self.transform, (first, first + 1))
        # END SOLUTION
