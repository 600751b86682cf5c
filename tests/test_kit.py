"""``cvgrade kit``: the template, the public tests and a README; nothing of the reference, no hidden test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grader import manifest as manifests
from grader.cli import app
from grader.kit import PUBLIC_TESTS, KitError, build_kit, examples

runner = CliRunner()
SOLUTION = re.compile(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", re.DOTALL)


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if len(line.strip()) >= 30 and not line.strip().startswith("#")}


def solution_lines(manifest: manifests.Manifest) -> set[str]:
    """Lines found only in the reference's solution regions: not elsewhere in it, nor in the public tests."""
    inside, outside = set(), set()
    for path in manifest.reference_dir.rglob("*.py"):
        text = path.read_text()
        for region in SOLUTION.findall(text):
            inside |= _lines(region)
        outside |= _lines(SOLUTION.sub("", text))
    public = set().union(*(_lines(p.read_text()) for p in (manifest.suite_dir / "public").rglob("*.py")))
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
    assert "pip install" in readme and f"cvgrade check {assignment}" in readme
    assert leaks(manifest, tmp_path / "kit") == []


def leaks(manifest: manifests.Manifest, folder: Path) -> list[str]:
    """Every file of ``folder`` that holds reference-only code or names a hidden test, with what it holds."""
    secrets, hidden = solution_lines(manifest), hidden_test_names(manifest)
    assert secrets and hidden
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = path.read_text()
        leaked = sorted(secrets & _lines(text))
        named = sorted(name for name in hidden if re.search(rf"\b{name}\b", text))
        if leaked or named or "hidden" in path.relative_to(folder).parts:
            found.append(f"{path.relative_to(folder)}: {(leaked + named)[:3]}")
    return found


def test_the_scan_finds_a_reference_file_or_a_hidden_test_in_a_kit(tmp_path):
    manifest = manifests.get("fcos_detection")
    build_kit("fcos_detection", tmp_path / "kit")
    (tmp_path / "kit" / "detection_utils.py").write_text((manifest.reference_dir / "detection_utils.py").read_text())
    hidden = sorted((manifest.suite_dir / "hidden").glob("*.py"))[0]
    (tmp_path / "kit" / PUBLIC_TESTS / "extra.py").write_text(hidden.read_text())
    found = leaks(manifest, tmp_path / "kit")
    assert [line.split(":")[0] for line in found] == ["detection_utils.py", f"{PUBLIC_TESTS}/extra.py"], found

def test_the_cli_writes_a_kit_and_refuses_a_folder_with_files(tmp_path):
    result = runner.invoke(app, ["kit", "fcos_detection", "-o", str(tmp_path / "kit"), "--install",
                                 "pip install cvgrade-course"])
    assert result.exit_code == 0, result.output
    assert "pip install cvgrade-course" in (tmp_path / "kit" / "README.md").read_text()
    result = runner.invoke(app, ["kit", "fcos_detection", "-o", str(tmp_path / "kit")])
    assert result.exit_code == 2 and "is not an empty folder" in " ".join(result.output.split())
    with pytest.raises(KitError, match="got ' '"):
        build_kit("fcos_detection", tmp_path / "other", install=" ")


def test_readme_examples_come_from_the_default_profile_tests():
    extended = 'pytestmark = pytest.mark.part("extended")\ndef test_nms_x():\n    pass\n'
    main = '@pytest.mark.number("3.1")\ndef test_centerness_golden():\n    pass\n'
    assert examples([extended, main]) == ("centerness", "3")
    assert examples([]) == ("", "")
