"""Manifests are validated with messages that name the file, the key and the bad value."""

from __future__ import annotations

import pytest

from grader.manifest import ManifestError, load_manifest, parse_size


def write(tmp_path, text, folder="toy"):
    path = tmp_path / folder / "assignment.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


GOOD = 'name = "toy"\npoints = 5\nstudent_files = ["a.py"]\n'


def test_good_manifest_and_defaults(tmp_path):
    manifest = load_manifest(write(tmp_path, GOOD + '[grading]\nmemory_limit = "512MiB"\ncall_timeout = 5\n'))
    assert manifest.points == 5.0 and manifest.student_modules == ("a",)
    assert manifest.grading.memory_limit == 512 * 2**20 and manifest.grading.call_timeout == 5.0
    assert manifest.grading.hidden_visibility == "after_due_date"


@pytest.mark.parametrize(("text", "message"), [
    ('name = "toy"\npoints = 5\n', "'student_files' must name at least one file"),
    ('name = "Toy!"\npoints = 5\nstudent_files = ["a.py"]\n', "'name' must be a snake_case identifier, got 'Toy!'"),
    ('name = "other"\npoints = 5\nstudent_files = ["a.py"]\n', "'name' is 'other' but the folder is 'toy'"),
    ('name = "toy"\npoints = -1\nstudent_files = ["a.py"]\n', "'points' must be a positive number, got -1"),
    (GOOD + 'colour = "red"\n', "unknown keys ['colour']"),
    (GOOD + '[grading]\nhidden_visibility = "sometimes"\n', "got 'sometimes'"),
    (GOOD + '[grading]\ncall_timeout = 0\n', "grading.call_timeout must be a positive number"),
    (GOOD + '[grading]\nmemory_limit = "lots"\n', "got 'lots'"),
    (GOOD + 'provided_files = ["a.py"]\n', "both as student and provided"),
    ('name = "toy"\npoints = 5\nstudent_files = ["../x.py"]\n', "relative paths inside the assignment"),
    ("name = \n", "not valid TOML"),
    (GOOD + '[profiles.a]\npoints = 5\n[profiles.b]\npoints = 7\n', "say which is the default with default_profile"),
    (GOOD + 'default_profile = "c"\n[profiles.a]\npoints = 5\n', "default_profile is 'c', not one of ['a']"),
    (GOOD + 'default_profile = "a"\n', "no [profiles] table"),
    (GOOD + '[profiles.a]\npoints = 6\n', "'points' is 5 but the default profile 'a' carries 6"),
    (GOOD + '[profiles.a]\npoints = 5\nparts = []\n', "profiles.a.parts must be a non-empty list"),
    (GOOD + '[profiles.a]\npoints = 5\ncolour = 1\n', "profiles.a: unknown keys ['colour']"),
    (GOOD + '[profiles.A]\npoints = 5\n', "a profile name must be a snake_case identifier, got 'A'"),
])
def test_bad_manifests_are_explained(tmp_path, text, message):
    with pytest.raises(ManifestError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        load_manifest(write(tmp_path, text))


def test_optional_files_give_optional_modules(tmp_path):
    manifest = load_manifest(write(tmp_path, GOOD + 'optional_files = ["metrics.py", "notes.md"]\n'))
    assert manifest.optional_modules == ("metrics",) and manifest.student_modules == ("a",)


def test_profiles(tmp_path):
    text = GOOD.replace("points = 5", "points = 5\ndefault_profile = \"course\"") + \
        '[profiles.course]\npoints = 5\n[profiles.extended]\ntitle = "more"\npoints = 7.5\nparts = ["main", "extra"]\n'
    manifest = load_manifest(write(tmp_path, text))
    assert manifest.profile().name == "course" and manifest.profile().parts == ("main",)
    assert manifest.profile("extended").points == 7.5 and manifest.parts == {"main", "extra"}
    with pytest.raises(ManifestError, match=r"toy has no profile 'x'; its profiles are \['course', 'extended'\]"):
        manifest.profile("x")
    plain = load_manifest(write(tmp_path / "plain", GOOD))
    assert [(p.name, p.points, p.parts) for p in plain.all_profiles] == [("default", 5.0, ("main",))]


def test_sizes():
    assert parse_size("2GiB") == 2 * 2**30 and parse_size("1.5 GB") == 1_500_000_000 and parse_size(4096) == 4096
    with pytest.raises(ManifestError, match="got '2 parsecs'"):
        parse_size("2 parsecs")
