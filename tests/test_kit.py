"""``cvgrade kit``: the template, the public tests and a README; nothing of the reference, no hidden test."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grader import manifest as manifests
from grader.cli import app
from grader.kit import PUBLIC_TESTS, KitError, build_kit, build_student_wheel, examples, secret_entries

runner = CliRunner()
SOLUTION = re.compile(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", re.DOTALL)


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if len(line.strip()) >= 30 and not line.strip().startswith("#")}


def solution_lines(manifest: manifests.Manifest) -> set[str]:
    """Lines found only in the reference's solution regions: not elsewhere in it, in the engine or in the other
    assignments' templates."""
    inside, outside = set(), set()
    for path in manifest.reference_dir.rglob("*.py"):
        text = path.read_text()
        for region in SOLUTION.findall(text):
            inside |= _lines(region)
        outside |= _lines(SOLUTION.sub("", text))
    # The engine and the other assignments' templates ship to students too (in the wheel): a line they have is
    # no secret. This assignment's own template is not counted, so that a solution line in it is still found.
    engine = [p for p in (manifest.suite_dir.parent.parent).rglob("*.py") if "hidden" not in p.parts]
    engine += [p for p in manifest.template_dir.parent.rglob("*.py") if not p.is_relative_to(manifest.template_dir)]
    public = set().union(*(_lines(p.read_text()) for p in engine))
    return inside - outside - public


def hidden_test_names(manifest: manifests.Manifest) -> set[str]:
    """Names of the hidden tests that no public test shares."""
    def names(folder: Path) -> set[str]:
        return {m for p in folder.rglob("*.py") for m in re.findall(r"def (test_\w+)", p.read_text())}

    return names(manifest.suite_dir / "hidden") - names(manifest.suite_dir / "public")


@pytest.mark.parametrize("assignment", sorted(manifests.discover()))
def test_the_kit_holds_the_template_public_tests_and_readme_and_nothing_secret(tmp_path, assignment):
    manifest = manifests.get(assignment)
    report = build_kit(assignment, tmp_path / "kit")
    files = sorted(p for p in (tmp_path / "kit").rglob("*") if p.is_file())
    assert sorted(report.files) == sorted(p.relative_to(tmp_path / "kit").as_posix() for p in files)
    template = {"ASSIGNMENT.md" if p.name == "README.md" else p.relative_to(manifest.template_dir).as_posix()
                for p in manifest.template_dir.rglob("*") if p.is_file() and p.name != "__init__.py"
                and "__pycache__" not in p.parts}
    assert template <= set(report.files)
    for name in manifest.student_files:
        assert (tmp_path / "kit" / name).read_text() == (manifest.template_dir / name).read_text()
    public = sorted(p.name for p in (manifest.suite_dir / "public").glob("*.py"))
    assert sorted(p.name for p in (tmp_path / "kit" / PUBLIC_TESTS).iterdir()) == public
    for name in public:
        shipped = (tmp_path / "kit" / PUBLIC_TESTS / name).read_text()
        assert shipped == (manifest.suite_dir / "public" / name).read_text()
        assert not re.search(r"^\s*(from|import) (reference|grader\.suites\.\w+\.hidden)\b", shipped, re.MULTILINE), name
    readme = (tmp_path / "kit" / "README.md").read_text()
    assert "pip install ./cvgrade-0.1.0-py3-none-any.whl" in readme and f"cvgrade check {assignment}" in readme
    assert (tmp_path / "kit" / "cvgrade-0.1.0-py3-none-any.whl").is_file()
    assert leaks(manifest, tmp_path / "kit") == []


def _texts(folder: Path) -> list[tuple[str, str]]:
    """(name, text) of every file of ``folder``, and of every file inside the wheels there ("x.whl/path")."""
    texts = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                texts += [(f"{name}/{entry}", wheel.read(entry).decode("utf-8", errors="replace"))
                          for entry in wheel.namelist()]
        else:
            texts.append((name, path.read_text()))
    return texts


def leaks(manifest: manifests.Manifest, folder: Path) -> list[str]:
    """Every file of ``folder`` (and of its wheels) that holds reference-only code or names a hidden test."""
    secrets, hidden = solution_lines(manifest), hidden_test_names(manifest)
    assert secrets and hidden
    found = []
    for name, text in _texts(folder):
        leaked = sorted(secrets & _lines(text))
        named = sorted(test for test in hidden if re.search(rf"\b{test}\b", text))
        if leaked or named or secret_entries([name.split(".whl/", 1)[-1]]):
            found.append(f"{name}: {(leaked + named)[:3]}")
    return found


def test_the_scan_finds_a_reference_file_or_a_hidden_test_in_a_kit(tmp_path):
    manifest = manifests.get("fcos_detection")
    build_kit("fcos_detection", tmp_path / "kit", install="pip install cvgrade-course")
    (tmp_path / "kit" / "detection_utils.py").write_text((manifest.reference_dir / "detection_utils.py").read_text())
    hidden = sorted((manifest.suite_dir / "hidden").glob("*.py"))[0]
    (tmp_path / "kit" / PUBLIC_TESTS / "extra.py").write_text(hidden.read_text())
    with zipfile.ZipFile(tmp_path / "kit" / "cvgrade-0-py3-none-any.whl", "w") as wheel:
        wheel.write(manifest.reference_dir / "detection_utils.py", "reference/fcos_detection/detection_utils.py")
    found = leaks(manifest, tmp_path / "kit")
    assert [line.split(":")[0] for line in found] == [
        "cvgrade-0-py3-none-any.whl/reference/fcos_detection/detection_utils.py", "detection_utils.py",
        f"{PUBLIC_TESTS}/extra.py"], found


def test_no_wheel_without_a_source_tree(tmp_path, monkeypatch):
    monkeypatch.setattr("grader.paths.project_root", lambda: tmp_path)
    with pytest.raises(KitError, match="give the course's install line with --install"):
        build_student_wheel(tmp_path)


def test_secret_entries_are_reference_files_and_hidden_folders():
    assert secret_entries(["reference/x.py", "grader/suites/a/hidden/test_h.py", "grader/suites/a/public/t.py",
                           "grader/hidden.py", "student_template/a/x.py"]) == [
        "reference/x.py", "grader/suites/a/hidden/test_h.py"]


def test_a_student_install_checks_the_public_tests_and_refuses_to_grade(tmp_path):
    """The kit's wheel installed in a fresh environment: ``cvgrade check`` gives full public marks to a correct
    submission (no reference and no hidden test needed), ``cvgrade grade`` says it cannot grade."""
    wheel = build_student_wheel(tmp_path)
    env_dir = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)  # torch etc. from this environment
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", str(wheel)], check=True)
    here = subprocess.run([str(python), "-c", "import grader, pathlib; print(pathlib.Path(grader.__file__).parent)"],
                          capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert Path(here).is_relative_to(env_dir), here
    assert not (Path(here).parent / "reference").exists()
    submission = tmp_path / "hw"
    manifest = manifests.get("fcos_detection")
    submission.mkdir()
    for name in manifest.student_files:
        (submission / name).write_text((manifest.reference_dir / name).read_text())
    cli = str(env_dir / "bin" / "cvgrade")
    checked = subprocess.run([cli, "check", "fcos_detection", str(submission)], capture_output=True, text=True,
                             cwd=tmp_path, timeout=600)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "Score 35 / 35; 25 more points are in hidden tests" in checked.stdout
    graded = subprocess.run([cli, "grade", "fcos_detection", str(submission), "-o", str(tmp_path / "r.json")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    message = " ".join(graded.stderr.split())
    assert "a student install has only the public tests" in message, graded.stdout[-2000:] + graded.stderr
    assert "cvgrade check fcos_detection" in message

def test_the_cli_writes_a_kit_and_refuses_a_folder_with_files(tmp_path):
    result = runner.invoke(app, ["kit", "fcos_detection", "-o", str(tmp_path / "kit"), "--install",
                                 "pip install cvgrade-course"])
    assert result.exit_code == 0, result.output
    assert "pip install cvgrade-course" in (tmp_path / "kit" / "README.md").read_text()
    assert not list((tmp_path / "kit").glob("*.whl"))  # the course's own install: no wheel
    result = runner.invoke(app, ["kit", "fcos_detection", "-o", str(tmp_path / "kit")])
    assert result.exit_code == 2 and "is not an empty folder" in " ".join(result.output.split())
    with pytest.raises(KitError, match="got ' '"):
        build_kit("fcos_detection", tmp_path / "other", install=" ")


def test_readme_examples_come_from_the_default_profile_tests():
    extended = 'pytestmark = pytest.mark.part("extended")\ndef test_nms_x():\n    pass\n'
    main = '@pytest.mark.number("3.1")\ndef test_centerness_golden():\n    pass\n'
    assert examples([extended, main]) == ("centerness", "3")
    assert examples([]) == ("", "")
