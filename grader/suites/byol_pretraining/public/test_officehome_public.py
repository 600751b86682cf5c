"""Public tests of the Office-Home CSV reader and dataset (no reference needed)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from grader.compare import assert_close, check
from grader.student import student_raises


def _records(records) -> list[tuple]:
    return [(r.id, r.filename, r.label, r.line) for r in records]


@pytest.mark.weight(1)
@pytest.mark.number("4.1")
def test_read_office_csv(student, sandbox_tmp_path):
    """read_office_csv: ids, file names, labels and line numbers of a valid CSV"""
    path = sandbox_tmp_path / "train.csv"
    path.write_text("\ufeffid, filename ,label\n0,Couch_00000.jpg,13\n\n1, Mug_00001.jpg , 37\n2,Pen_00002.jpg,64\n",
                    encoding="utf-8")
    got = _records(student.officehome.read_office_csv(str(path)))
    expected = [(0, "Couch_00000.jpg", 13, 2), (1, "Mug_00001.jpg", 37, 4), (2, "Pen_00002.jpg", 64, 5)]
    check(got == expected, f"expected records (id, filename, label, line) {expected}, got {got}",
          call="read_office_csv('id, filename ,label / 0,Couch_00000.jpg,13 / (blank) / ...')",
          hint="strip spaces and the UTF-8 BOM; skip blank lines but count them in line numbers (header = line 1)")
    path.write_text("filename,label,id\nTV_00009.jpg,58,9\nFan_00003.jpg,19,3\n", encoding="utf-8")
    got = _records(student.officehome.read_office_csv(str(path)))
    expected = [(9, "TV_00009.jpg", 58, 2), (3, "Fan_00003.jpg", 19, 3)]
    check(got == expected, f"expected {expected}, got {got}", call="read_office_csv('filename,label,id / ...')",
          hint="find the columns by their names in the header")


BAD_FILES = {
    "label_not_integer": ("id,filename,label\n0,a.jpg,1\n1,b.jpg,cat\n", 3, "cat"),
    "id_not_integer": ("id,filename,label\n0,a.jpg,1\n\n1.5,b.jpg,2\n", 4, "1.5"),
    "label_too_large": ("id,filename,label\n0,a.jpg,65\n", 2, "65"),
    "label_negative": ("id,filename,label\n0,a.jpg,2\n1,b.jpg,-1\n", 3, "-1"),
    "missing_field": ("id,filename,label\n0,a.jpg,1\n1,b.jpg,2\n2,c.jpg,3\n3,Mug.jpg\n", 5, None),
    "extra_field": ("id,filename,label\n0,a.jpg,1,7\n", 2, None),
    "header_without_label": ("id,filename,class\n0,a.jpg,1\n", 1, "label"),
    "empty_filename": ("id,filename,label\n0,a.jpg,1\n1, ,4\n", 3, None),
    "duplicate_id": ("id,filename,label\n7,a.jpg,1\n8,b.jpg,2\n7,c.jpg,3\n", 4, "line 2"),
    "empty_file": ("", 1, None),
}


@pytest.mark.weight(3)
@pytest.mark.number("4.2")
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_read_office_csv_reports_the_line(student, sandbox_tmp_path, case):
    """read_office_csv reports a broken CSV with its line number"""
    text, line, quoted = BAD_FILES[case]
    path = sandbox_tmp_path / f"{case}.csv"
    path.write_text(text, encoding="utf-8")
    with student_raises("ValueError", match=rf"\bline {line}\b") as caught:
        student.officehome.read_office_csv(str(path))
    if quoted is not None:
        message = caught["error"].message
        check(re.search(re.escape(quoted), message) is not None,
              f"the message should quote {quoted!r}; it was {message!r}", call=f"read_office_csv({text!r})")


def _write_split(folder, count: int = 4):
    images = []
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["id,filename,label"]
    generator = torch.Generator().manual_seed(8)
    for i in range(count):
        height, width = 10 + i, 12
        array = torch.randint(0, 256, (height, width, 3), generator=generator, dtype=torch.uint8)
        image = Image.fromarray(array.numpy())
        if i == 2:
            image = image.convert("L")
        image.save(folder / f"img{i}.png")
        images.append(torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1))
        rows.append(f"{10 + i},img{i}.png,{(7 * i) % 65}")
    (folder.parent / f"{folder.name}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return images


@pytest.mark.weight(2)
@pytest.mark.number("4.3")
def test_office_home_dataset(student, worker, plain, sandbox_tmp_path):
    """OfficeHomeDataset: RGB images as float tensors with their labels, missing files by line"""
    images = _write_split(sandbox_tmp_path / "office" / "train")
    csv_path, image_dir = str(sandbox_tmp_path / "office" / "train.csv"), str(sandbox_tmp_path / "office" / "train")
    dataset = student.officehome.OfficeHomeDataset(csv_path, image_dir)
    call = "OfficeHomeDataset('train.csv', 'train/')"
    check(len(dataset) == 4, f"expected 4 items, got {len(dataset)}", call=call)
    for i in range(4):
        image, label = dataset[i]
        check(isinstance(label, int) and label == (7 * i) % 65, f"item {i}: expected label {(7 * i) % 65}, "
              f"got {label!r}", call=call + f"[{i}]")
        assert_close(plain(image), images[i].float() / 255, call=call + f"[{i}]", what="image",
                     hint="open as RGB (convert grey images); default transform ToImage + ToDtype(float32, scale=True)")
    resize = worker.v2.Compose([worker.v2.Resize((8, 8)), worker.v2.ToImage(),
                                worker.v2.ToDtype(torch.float32, scale=True)])
    image, _ = student.officehome.OfficeHomeDataset(csv_path, image_dir, resize)[1]
    check(tuple(plain(image).shape) == (3, 8, 8), f"with a Resize((8, 8)) transform expected [3, 8, 8], got "
          f"{list(plain(image).shape)}", call="OfficeHomeDataset(..., transform=Resize((8, 8)) + ToImage + ToDtype)[1]")
    (sandbox_tmp_path / "office" / "train" / "img2.png").unlink()
    with student_raises("FileNotFoundError", match=r"\bline 4\b"):
        student.officehome.OfficeHomeDataset(csv_path, image_dir)
