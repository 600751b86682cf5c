"""Finding a student's files in loose uploads, sub-folders and zips; the course's copies always win."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from grader.manifest import GradingSettings, Manifest
from grader.submission import SubmissionError, prepare, safe_extract


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    template = tmp_path / "template"
    template.mkdir()
    (template / "train.py").write_text("COURSE = True\n")
    return Manifest(name="toy", title="toy", points=1, student_files=("detection_utils.py", "one_stage_detector.py"),
                    provided_files=("train.py",), optional_files=("model.pth",), grading=GradingSettings(),
                    path=tmp_path / "suite" / "assignment.toml")


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_loose_files(tmp_path, manifest):
    upload = write(tmp_path / "up", {"detection_utils.py": "A = 1\n", "one_stage_detector.py": "B = 1\n",
                                     "report.pdf": "%PDF"})
    prepared = prepare(upload, manifest, tmp_path / "out", provided_from=tmp_path / "template")
    assert prepared.found == {"detection_utils.py": "detection_utils.py", "one_stage_detector.py": "one_stage_detector.py"}
    assert prepared.missing == [] and prepared.ignored == ["report.pdf"]
    assert (tmp_path / "out/train.py").read_text() == "COURSE = True\n"


def test_subfolder_helpers_ambiguity_and_course_copies_win(tmp_path, manifest):
    upload = write(tmp_path / "up", {
        "hw1/detection/detection_utils.py": "A = 1\n",
        "hw1/detection/one_stage_detector.py": "B = 1\n",
        "hw1/detection/my_helpers.py": "H = 1\n",
        "hw1/detection/torch.py": "raise SystemExit\n",  # would shadow torch: never kept
        "hw1/detection/train.py": "COURSE = False\n",
        "old/deeper/detection_utils.py": "A = 'old'\n",
        "__MACOSX/hw1/._detection_utils.py": "junk",
        "model.pth": "weights",
    })
    prepared = prepare(upload, manifest, tmp_path / "out", provided_from=tmp_path / "template")
    assert prepared.found["detection_utils.py"] == "hw1/detection/detection_utils.py"
    assert prepared.ambiguous["detection_utils.py"] == ["hw1/detection/detection_utils.py",
                                                        "old/deeper/detection_utils.py"]
    assert prepared.extra_modules == ["my_helpers.py"]
    assert "hw1/detection/torch.py" in prepared.ignored
    assert prepared.overridden == ["hw1/detection/train.py"]
    assert (tmp_path / "out/train.py").read_text() == "COURSE = True\n"
    assert (tmp_path / "out/model.pth").read_text() == "weights"
    assert not any("__MACOSX" in name for name in prepared.ignored)
    report = prepared.report()
    assert "found detection_utils.py (found at hw1/detection/detection_utils.py)" in report
    assert "ignored your hw1/detection/train.py" in report


def test_missing_file_is_reported(tmp_path, manifest):
    upload = write(tmp_path / "up", {"detection_utils.py": "A = 1\n"})
    prepared = prepare(upload, manifest, tmp_path / "out", provided_from=tmp_path / "template")
    assert prepared.missing == ["one_stage_detector.py"]
    assert "MISSING one_stage_detector.py" in prepared.report()


def test_zip_and_zip_inside_folder(tmp_path, manifest):
    archive = tmp_path / "sub.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("code/detection_utils.py", "A = 1\n")
        zf.writestr("code/one_stage_detector.py", "B = 1\n")
    prepared = prepare(archive, manifest, tmp_path / "out1", provided_from=tmp_path / "template")
    assert prepared.missing == [] and prepared.found["one_stage_detector.py"] == "code/one_stage_detector.py"
    folder = tmp_path / "gradescope_upload"
    folder.mkdir()
    (folder / "sub.zip").write_bytes(archive.read_bytes())
    prepared = prepare(folder, manifest, tmp_path / "out2", provided_from=tmp_path / "template")
    assert prepared.missing == []


@pytest.mark.parametrize("member", ["../evil.py", "/abs/evil.py", "a/../../evil.py"])
def test_unsafe_zip_members_are_refused(tmp_path, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, "x")
    with pytest.raises(SubmissionError, match="unsafe path"):
        safe_extract(archive, tmp_path / "dest")
    assert not (tmp_path / "evil.py").exists()


def test_zip_symlink_and_bomb_are_refused(tmp_path, monkeypatch):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(SubmissionError, match="symbolic link"):
        safe_extract(archive, tmp_path / "dest")
    monkeypatch.setattr("grader.submission.MAX_UNZIPPED_BYTES", 10)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.py", "0" * 1000)
    with pytest.raises(SubmissionError, match="unpacks to 1000 bytes"):
        safe_extract(bomb, tmp_path / "dest2")


def test_unreadable_uploads(tmp_path, manifest):
    with pytest.raises(SubmissionError, match="no submission at"):
        prepare(tmp_path / "nothing", manifest, tmp_path / "out")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SubmissionError, match="neither a folder nor a zip"):
        prepare(tmp_path / "notes.txt", manifest, tmp_path / "out")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(SubmissionError):
        prepare(tmp_path / "broken.zip", manifest, tmp_path / "out")


def test_a_file_named_in_another_case_gets_did_you_mean(tmp_path, manifest):
    upload = write(tmp_path / "up", {"Detection_Utils.py": "x = 1\n", "one_stage_detecter.py": "y = 2\n",
                                     "helper.py": "z = 3\n"})
    result = prepare(upload, manifest, tmp_path / "out")
    assert result.missing == ["detection_utils.py", "one_stage_detector.py"]
    assert result.misnamed == {"detection_utils.py": "Detection_Utils.py",
                               "one_stage_detector.py": "one_stage_detecter.py"}
    report = result.report()
    assert "you uploaded Detection_Utils.py: did you mean `detection_utils.py`?" in report
    assert "did you mean `one_stage_detector.py`?" in report
    upload = write(tmp_path / "up2", {"Detection_Utils.py": "x = 1\n", "one_stage_detector.py": "y = 2\n",
                                      "helper.py": "z = 3\n"})
    result = prepare(upload, manifest, tmp_path / "out2")
    assert result.misnamed == {"detection_utils.py": "Detection_Utils.py"}
    assert result.extra_modules == ["helper.py"]  # the misnamed file is not kept as a helper module


def test_near_name_leaves_other_course_files_and_far_names_alone():
    from grader.submission import near_name

    assert near_name("task_1.py", ["notes.py", "task_1.txt"]) is None
    assert near_name("detection_utils.py", ["sub/DETECTION_UTILS.py", "Detection_utils.py"]) == "Detection_utils.py"
    assert near_name("detection_utils.py", ["detection_utils.ipynb"]) is None
