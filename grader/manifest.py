"""Per-assignment manifests: ``grader/suites/<assignment>/assignment.toml``.

A manifest says which files a student writes, which files the course hands out
(always taken from the course's copy, never from a submission), how many points
the suite is worth, and the grading limits::

    name = "fcos_detection"
    title = "FCOS one-stage detection"
    points = 60
    student_files = ["detection_utils.py", "one_stage_detector.py"]
    provided_files = ["train.py"]
    reference_only = ["make_plots.py"]

    [grading]
    call_timeout = 60          # seconds per call into student code
    memory_limit = "4GiB"      # for the process that runs student code
    threads = 1                # compute threads of the process that runs student code
    definitions_only = ["task_2.py"]    # script-style student files: import their definitions only
    definitions_on_import_error = false # or: do so for any student file whose plain import raises
    offline_weights = ["resnet18"]      # torchvision weights the course's code loads (seeded stand-ins)
    cuda_on_cpu = true                  # run hard-coded .cuda() / .to('cuda') on the CPU (no GPU here)
    test_timeout = 300         # seconds per test
    gpu = false                # true: graded on a GPU machine; the CUDA speed checks count (marker cuda)
    public_visibility = "visible"
    hidden_visibility = "after_due_date"

    [gradescope]               # what the Gradescope assignment needs (see GradescopeSettings)
    late_penalty_per_day = 0.1
    max_late_days = 5
    daily_submission_limit = 0
    autograder_timeout = 600
    container_memory = "768MB"
    container_cpus = 0.5
    course_packages = ["imageio", "wandb"]   # what the course's own files import, installed in the image

An assignment may be graded in several **profiles**: named selections of its
parts, each with its own points. A test belongs to the part its
``@pytest.mark.part("name")`` marker names, or to ``main``; a course picks a
profile with ``--profile`` (``cvgrade grade``, ``package``, ``batch``), and
``points`` above are the default profile's::

    default_profile = "course"

    [profiles.course]            # the course's own work, exactly (the default)
    title = "16-824 S24 HW1 Q3"
    points = 60
    parts = ["main"]

    [profiles.extended]          # plus this project's extra tasks
    title = "... with NMS and VOC mAP"
    points = 72.5
    parts = ["main", "extended"]

Without ``[profiles]`` there is one profile, ``default``, of part ``main``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 images only
    import tomli as tomllib

from grader import paths

MANIFEST_NAME = "assignment.toml"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAIN_PART = "main"
DEFAULT_PROFILE = "default"
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "m": 1e6, "mb": 1e6, "mib": 2**20,
               "g": 1e9, "gb": 1e9, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40}


class ManifestError(ValueError):
    """An ``assignment.toml`` that cannot be used; the message names the file and key."""


def parse_size(value: str | int, *, where: str = "size") -> int:
    """Bytes in a size such as ``"2GiB"``, ``"512 MB"`` or ``1073741824``.

    Raises:
        ManifestError: when the value is not a size; the message quotes it.
    """
    if isinstance(value, bool):
        raise ManifestError(f"{where}: expected a size such as '2GiB', got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ManifestError(f"{where}: a size must be positive, got {value!r}")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ManifestError(f"{where}: expected a size such as '2GiB' or '512MB', got {value!r}")
    number, unit = match.groups()
    factor = _SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise ManifestError(f"{where}: unknown unit {unit!r} in {value!r}")
    return int(float(number) * factor)


def parse_container_size(value: str | int, *, where: str = "size") -> int:
    """Bytes in a Gradescope container size, read in binary units as Gradescope's are ("768MB" is 768 MiB).

    Raises:
        ManifestError: when the value is not a size; the message quotes it.
    """
    if isinstance(value, str):
        value = re.sub(r"(?i)([kmgt])b\b", lambda m: m.group(1) + "iB", value.strip())
    return parse_size(value, where=where)


@dataclass(frozen=True)
class GradingSettings:
    call_timeout: float = 60.0
    memory_limit: int = 4 * 2**30
    test_timeout: float = 300.0
    gpu: bool = False
    public_visibility: str = "visible"
    hidden_visibility: str = "after_due_date"
    threads: int = 1
    # Script-style student files: imported as their definitions only (grader.sandbox.loader).
    definitions_only: tuple[str, ...] = ()
    definitions_on_import_error: bool = False
    # torchvision builders whose pretrained weights the course's code loads (grader.weights: offline stand-ins).
    offline_weights: tuple[str, ...] = ()
    # Courses that ran on GPUs: the student's hard-coded .cuda() / .to('cuda') run on the CPU of a GPU-less grader.
    cuda_on_cpu: bool = False
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GradescopeSettings:
    """What the Gradescope assignment needs (``[gradescope]`` in the manifest).

    Attributes:
        late_penalty_per_day: fraction of the score lost per started day late (0.1 = 10 %).
        max_late_days: later than this many days, the score is 0 (None: no cut-off).
        daily_submission_limit: graded submissions per 24 hours (0: unlimited); over the
            limit the previous result is kept and the student is told why.
        autograder_timeout: seconds to set as Gradescope's autograder timeout.
        container_memory: the container memory to choose in Gradescope's settings.
        container_cpus: the container CPUs to choose.
        course_packages: distributions the course's starter code imports (e.g. ``imageio``,
            ``wandb``) that the Gradescope image must have besides the grader's own; each must be
            pinned in the image's lock (``docker/gradescope-py310.lock``).
    """

    late_penalty_per_day: float = 0.0
    max_late_days: int | None = None
    daily_submission_limit: int = 0
    autograder_timeout: int = 600
    container_memory: str = "768MB"
    container_cpus: float = 0.5
    course_packages: tuple[str, ...] = ()

    @property
    def container_bytes(self) -> int:
        """``container_memory`` in bytes: what a grading of this assignment needs in all.

        Read in binary units, as Gradescope's sizes are (its "768MB" container is 768 MiB).
        """
        return parse_container_size(self.container_memory, where="gradescope.container_memory")


@dataclass(frozen=True)
class Profile:
    """A named selection of an assignment's parts (``[profiles.<name>]``).

    Attributes:
        name: the profile's name (``"course"``).
        title: what it grades, in words.
        points: what its tests carry together.
        parts: the parts it grades; a test's part is its ``part`` marker, else ``"main"``.
    """

    name: str
    title: str
    points: float
    parts: tuple[str, ...] = (MAIN_PART,)


@dataclass(frozen=True)
class Manifest:
    """What one assignment consists of; see the module docstring for the file format."""

    name: str
    title: str
    points: float
    student_files: tuple[str, ...]
    provided_files: tuple[str, ...] = ()
    optional_files: tuple[str, ...] = ()
    reference_only: tuple[str, ...] = ()
    grading: GradingSettings = GradingSettings()
    gradescope: GradescopeSettings = GradescopeSettings()
    path: Path | None = None
    profiles: tuple[Profile, ...] = ()
    default_profile: str = DEFAULT_PROFILE

    def profile(self, name: str | None = None) -> Profile:
        """The profile called ``name`` (None: the default one).

        Raises:
            ManifestError: for a name the manifest does not define, listing those it does.
        """
        name = name or self.default_profile
        for profile in self.all_profiles:
            if profile.name == name:
                return profile
        raise ManifestError(f"{self.name} has no profile {name!r}; its profiles are "
                            f"{[p.name for p in self.all_profiles]}")

    @property
    def all_profiles(self) -> tuple[Profile, ...]:
        """The declared profiles, or the one implicit ``default`` profile (part ``main``, ``points``)."""
        return self.profiles or (Profile(DEFAULT_PROFILE, self.title, self.points),)

    @property
    def parts(self) -> frozenset[str]:
        """Every part some profile grades."""
        return frozenset(part for profile in self.all_profiles for part in profile.parts)

    @property
    def suite_dir(self) -> Path:
        return self.path.parent if self.path else paths.suites_root() / self.name

    @property
    def reference_dir(self) -> Path:
        return paths.reference_root() / self.name

    @property
    def template_dir(self) -> Path:
        return paths.template_root() / self.name

    @property
    def student_modules(self) -> tuple[str, ...]:
        return tuple(_module_name(f) for f in self.student_files if f.endswith(".py"))

    @property
    def optional_modules(self) -> tuple[str, ...]:
        """Module names of the ``.py`` files of ``optional_files``: a student's file that only some
        profiles grade (a missing one is not reported; a test that uses it fails on its own)."""
        return tuple(_module_name(f) for f in self.optional_files if f.endswith(".py"))

    @property
    def definitions_only_modules(self) -> tuple[str, ...]:
        """Module names of ``grading.definitions_only`` (``"task_2"`` for ``task_2.py``)."""
        return tuple(_module_name(f) for f in self.grading.definitions_only)

    @property
    def provided_modules(self) -> tuple[str, ...]:
        return tuple(_module_name(f) for f in self.provided_files if f.endswith(".py"))


def _module_name(relpath: str) -> str:
    return relpath[: -len(".py")].replace("/", ".")


def _str_list(data: dict, key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ManifestError(f"{where}: '{key}' must be a list of file names, got {value!r}")
    for v in value:
        if v.startswith("/") or ".." in Path(v).parts or "\\" in v:
            raise ManifestError(f"{where}: '{key}' entries are relative paths inside the assignment, got {v!r}")
    return tuple(value)


def load_manifest(path: Path) -> Manifest:
    """Read and validate one ``assignment.toml``.

    Raises:
        ManifestError: on unknown keys, wrong types or bad values, naming the key.
    """
    path = Path(path)
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{where}: no such manifest") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{where}: not valid TOML: {exc}") from None

    known = {"name", "title", "points", "student_files", "provided_files", "optional_files",
             "reference_only", "grading", "gradescope", "profiles", "default_profile"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ManifestError(f"{where}: unknown keys {unknown}; known keys are {sorted(known)}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ManifestError(f"{where}: 'name' must be a snake_case identifier, got {name!r}")
    if path.parent.name != name:
        raise ManifestError(f"{where}: 'name' is {name!r} but the folder is {path.parent.name!r}")
    points = data.get("points")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
        raise ManifestError(f"{where}: 'points' must be a positive number, got {points!r}")
    student_files = _str_list(data, "student_files", where)
    if not student_files:
        raise ManifestError(f"{where}: 'student_files' must name at least one file")
    provided = _str_list(data, "provided_files", where)
    clash = sorted(set(student_files) & set(provided))
    if clash:
        raise ManifestError(f"{where}: {clash} are listed both as student and provided files")

    grading_data = data.get("grading", {})
    if not isinstance(grading_data, dict):
        raise ManifestError(f"{where}: [grading] must be a table, got {grading_data!r}")
    grading_known = {"call_timeout", "memory_limit", "test_timeout", "gpu", "public_visibility",
                     "hidden_visibility", "threads", "definitions_only", "definitions_on_import_error",
                     "offline_weights", "cuda_on_cpu"}
    kwargs: dict = {}
    extra = {k: v for k, v in grading_data.items() if k not in grading_known}
    for key in ("call_timeout", "test_timeout"):
        if key in grading_data:
            value = grading_data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ManifestError(f"{where}: grading.{key} must be a positive number of seconds, got {value!r}")
            kwargs[key] = float(value)
    if "memory_limit" in grading_data:
        kwargs["memory_limit"] = parse_size(grading_data["memory_limit"], where=f"{where}: grading.memory_limit")
    if "threads" in grading_data:
        threads = grading_data["threads"]
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ManifestError(f"{where}: grading.threads must be a positive integer, got {threads!r}")
        kwargs["threads"] = threads
    if "definitions_only" in grading_data:
        files = grading_data["definitions_only"]
        if not isinstance(files, list) or not all(isinstance(f, str) and f in student_files for f in files):
            raise ManifestError(f"{where}: grading.definitions_only must list student files "
                                f"({list(student_files)}), got {files!r}")
        kwargs["definitions_only"] = tuple(files)
    if "offline_weights" in grading_data:
        builders = grading_data["offline_weights"]
        if not isinstance(builders, list) or not all(isinstance(b, str) and _NAME_RE.match(b) for b in builders):
            raise ManifestError(f"{where}: grading.offline_weights must list torchvision model builders such as "
                                f"'resnet18', got {builders!r}")
        kwargs["offline_weights"] = tuple(builders)
    for key in ("definitions_on_import_error", "cuda_on_cpu"):
        if key in grading_data:
            if not isinstance(grading_data[key], bool):
                raise ManifestError(f"{where}: grading.{key} must be true or false, got {grading_data[key]!r}")
            kwargs[key] = grading_data[key]
    if "gpu" in grading_data:
        if not isinstance(grading_data["gpu"], bool):
            raise ManifestError(f"{where}: grading.gpu must be true or false, got {grading_data['gpu']!r}")
        kwargs["gpu"] = grading_data["gpu"]
    for key in ("public_visibility", "hidden_visibility"):
        if key in grading_data:
            if grading_data[key] not in VISIBILITIES:
                raise ManifestError(
                    f"{where}: grading.{key} must be one of {list(VISIBILITIES)}, got {grading_data[key]!r}")
            kwargs[key] = grading_data[key]
    gradescope = _gradescope_settings(data.get("gradescope", {}), where)
    profiles, default_profile = _profiles(data, float(points), where)
    return Manifest(
        profiles=profiles,
        default_profile=default_profile,
        gradescope=gradescope,
        name=name,
        title=str(data.get("title", name)),
        points=float(points),
        student_files=student_files,
        provided_files=provided,
        optional_files=_str_list(data, "optional_files", where),
        reference_only=_str_list(data, "reference_only", where),
        grading=GradingSettings(**kwargs, extra=extra),
        path=path,
    )


def _profiles(data: dict, points: float, where: str) -> tuple[tuple[Profile, ...], str]:
    table = data.get("profiles")
    default = data.get("default_profile")
    if table is None:
        if default is not None:
            raise ManifestError(f"{where}: 'default_profile' is {default!r} but there is no [profiles] table")
        return (), DEFAULT_PROFILE
    if not isinstance(table, dict) or not table:
        raise ManifestError(f"{where}: [profiles] must hold at least one [profiles.<name>] table, got {table!r}")
    profiles = []
    for name, body in table.items():
        at = f"{where}: profiles.{name}"
        if not _NAME_RE.match(name):
            raise ManifestError(f"{at}: a profile name must be a snake_case identifier, got {name!r}")
        if not isinstance(body, dict):
            raise ManifestError(f"{at} must be a table, got {body!r}")
        unknown = sorted(set(body) - {"title", "points", "parts"})
        if unknown:
            raise ManifestError(f"{at}: unknown keys {unknown}; known keys are ['parts', 'points', 'title']")
        value = body.get("points")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ManifestError(f"{at}.points must be a positive number, got {value!r}")
        parts = body.get("parts", [MAIN_PART])
        if not isinstance(parts, list) or not parts or not all(isinstance(p, str) and _NAME_RE.match(p)
                                                               for p in parts):
            raise ManifestError(f"{at}.parts must be a non-empty list of part names such as 'main', got {parts!r}")
        profiles.append(Profile(name, str(body.get("title", name)), float(value), tuple(parts)))
    if default is None:
        if len(profiles) > 1:
            raise ManifestError(f"{where}: several profiles ({[p.name for p in profiles]}): say which is the "
                                f"default with default_profile")
        default = profiles[0].name
    chosen = [p for p in profiles if p.name == default]
    if not chosen:
        raise ManifestError(f"{where}: default_profile is {default!r}, not one of {[p.name for p in profiles]}")
    if abs(chosen[0].points - points) > 1e-9:
        raise ManifestError(f"{where}: 'points' is {points:g} but the default profile {default!r} carries "
                            f"{chosen[0].points:g}; they must agree")
    return tuple(profiles), default


def _gradescope_settings(data: object, where: str) -> GradescopeSettings:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: [gradescope] must be a table, got {data!r}")
    known = {"late_penalty_per_day", "max_late_days", "daily_submission_limit", "autograder_timeout",
             "container_memory", "container_cpus", "course_packages"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ManifestError(f"{where}: unknown keys {unknown} in [gradescope]; known keys are {sorted(known)}")
    kwargs: dict = {}
    penalty = data.get("late_penalty_per_day", 0.0)
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not 0 <= penalty <= 1:
        raise ManifestError(f"{where}: gradescope.late_penalty_per_day must be between 0 and 1, got {penalty!r}")
    kwargs["late_penalty_per_day"] = float(penalty)
    for key in ("max_late_days", "daily_submission_limit", "autograder_timeout"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ManifestError(f"{where}: gradescope.{key} must be a non-negative integer, got {value!r}")
            kwargs[key] = value
    if "container_memory" in data:
        parse_size(data["container_memory"], where=f"{where}: gradescope.container_memory")
        kwargs["container_memory"] = str(data["container_memory"])
    if "container_cpus" in data:
        cpus = data["container_cpus"]
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0:
            raise ManifestError(f"{where}: gradescope.container_cpus must be positive, got {cpus!r}")
        kwargs["container_cpus"] = float(cpus)
    if "course_packages" in data:
        packages = data["course_packages"]
        if not isinstance(packages, list) or not all(
                isinstance(p, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", p) for p in packages):
            raise ManifestError(f"{where}: gradescope.course_packages must be a list of distribution names "
                                f"(no versions: the lock pins them), got {packages!r}")
        kwargs["course_packages"] = tuple(packages)
    return GradescopeSettings(**kwargs)


def discover(suites_root: Path | None = None) -> dict[str, Manifest]:
    """All assignments under the suites folder, by name, sorted."""
    root = Path(suites_root) if suites_root else paths.suites_root()
    found = {}
    for manifest_path in sorted(root.glob(f"*/{MANIFEST_NAME}")):
        manifest = load_manifest(manifest_path)
        found[manifest.name] = manifest
    return found


def get(name: str) -> Manifest:
    """The manifest of one assignment.

    Raises:
        ManifestError: for an unknown assignment, listing the known ones.
    """
    known = discover()
    if name not in known:
        raise ManifestError(f"unknown assignment {name!r}; known assignments: {', '.join(known) or 'none'}")
    return known[name]


@lru_cache(maxsize=256)
def _manifest_in_dir(directory: Path) -> Manifest | None:
    candidate = directory / MANIFEST_NAME
    return load_manifest(candidate) if candidate.is_file() else None


def for_path(path: Path | str) -> Manifest | None:
    """The manifest of the suite that contains ``path`` (a test file or folder), if any."""
    path = Path(path).resolve()
    for directory in (path, *path.parents) if path.is_dir() else path.parents:
        manifest = _manifest_in_dir(directory)
        if manifest is not None:
            return manifest
    return None


def names(manifests: Iterable[Manifest]) -> list[str]:
    return [m.name for m in manifests]
