"""Reading the course from reference/: metadata for everyone, hidden tests for the grader.

A course is a folder with `course.toml` and one sub-folder per assignment holding
`assignment.toml`, `public/` (helpers the sandbox and students see), `reference.py`
and `tests.py` (hidden). Adding an assignment is adding a folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tomllib
import types
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from graders.dsl import ExerciseBuilder, ExerciseSpec, Suite
from graders.rubric import RubricError, RubricSpec, parse_rubric

EXERCISE_KINDS = ("function", "class", "model", "manual")
#: Exercises graded by staff, not by tests (their answer cells are tagged with the slug).
UNTESTED_KINDS = ("manual",)
#: The tools an assignment folder may say it was imported from (`imported_from`).
IMPORT_FORMATS = ("nbgrader", "otter")


class CourseError(Exception):
    """The course folder is malformed; the message says which file and what."""


@dataclass(frozen=True)
class ExerciseMeta:
    slug: str
    kind: str
    points: float
    device: str = "cpu"
    requires: tuple[str, ...] = ()
    #: Resources the exercise asks for beyond the service's defaults.
    memory_mb: int | None = None
    timeout: float | None = None
    #: A manual exercise's rubric (kind `manual` only; its answer is the notebook's cells
    #: tagged with the slug).
    rubric: RubricSpec | None = None


@dataclass(frozen=True)
class AssignmentMeta:
    slug: str
    title: str
    folder: Path
    version: str
    position: int
    due_at: datetime | None
    exercises: tuple[ExerciseMeta, ...]
    late_policy: dict[str, Any] = field(default_factory=dict)
    counting: str = "last"
    cap_total: int | None = None
    cap_per_day: int | None = None
    #: Data every test may use (model architecture name for model exercises, etc.).
    options: dict[str, Any] = field(default_factory=dict)
    #: "nbgrader" or "otter" for a folder made by `autograder assignment import`.
    imported_from: str | None = None

    @property
    def max_score(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def public_dir(self) -> Path:
        return self.folder / "public"


@dataclass(frozen=True)
class CourseMeta:
    slug: str
    title: str
    folder: Path
    assignments: tuple[AssignmentMeta, ...]

    def assignment(self, slug: str) -> AssignmentMeta:
        for a in self.assignments:
            if a.slug == slug:
                return a
        raise KeyError(slug)


def folder_version(folder: Path) -> str:
    """sha256 over the folder's files (names and bytes), ignoring caches."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _parse_due(value: Any, where: Path) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise CourseError(f"{where}: due_at {value!r} is not an ISO date-time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _rubric_of(
    raw: dict[str, Any], kind: str, slug: str, points: float, toml_path: Path
) -> RubricSpec | None:
    """A manual exercise's rubric (required); other kinds have none."""
    if kind != "manual":
        if "rubric" in raw:
            raise CourseError(
                f"{toml_path}: exercise {slug!r} is of kind {kind!r}; only "
                "manual exercises have a rubric."
            )
        return None
    if "rubric" not in raw:
        raise CourseError(
            f"{toml_path}: manual exercise {slug!r} has no rubric: add "
            f"[[exercises.rubric.items]] with id, points and description."
        )
    try:
        return parse_rubric(raw["rubric"], points)
    except RubricError as exc:
        raise CourseError(f"{toml_path}: manual exercise {slug!r}: {exc}") from exc


def load_assignment_meta(folder: Path) -> AssignmentMeta:
    toml_path = folder / "assignment.toml"
    try:
        data = tomllib.loads(toml_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CourseError(f"{toml_path}: {exc}") from exc
    exercises = []
    for raw in data.get("exercises", []):
        kind = raw.get("kind", "function")
        if kind not in EXERCISE_KINDS:
            raise CourseError(f"{toml_path}: exercise kind {kind!r} is not one of {EXERCISE_KINDS}")
        slug = raw["slug"]
        points = float(raw["points"])
        exercises.append(
            ExerciseMeta(
                slug=slug,
                kind=kind,
                points=points,
                device=raw.get("device", "cpu"),
                requires=tuple(raw.get("requires", ())),
                memory_mb=raw.get("memory_mb"),
                timeout=raw.get("timeout"),
                rubric=_rubric_of(raw, kind, slug, points, toml_path),
            )
        )
    if not exercises:
        raise CourseError(f"{toml_path}: no [[exercises]]")
    limits = data.get("limits", {})
    imported_from = data.get("imported_from")
    if imported_from is not None and imported_from not in IMPORT_FORMATS:
        raise CourseError(
            f"{toml_path}: imported_from {imported_from!r} is not one of {IMPORT_FORMATS}"
        )
    return AssignmentMeta(
        slug=data.get("slug", folder.name),
        title=data["title"],
        folder=folder.resolve(),
        version=folder_version(folder),
        position=int(data.get("position", 0)),
        due_at=_parse_due(data.get("due_at"), toml_path),
        exercises=tuple(exercises),
        late_policy=dict(data.get("late_policy", {"kind": "none"})),
        counting=data.get("counting", "last"),
        cap_total=limits.get("total"),
        cap_per_day=limits.get("per_day"),
        options=dict(data.get("options", {})),
        imported_from=imported_from,
    )


def load_course(folder: Path) -> CourseMeta:
    course_toml = folder / "course.toml"
    try:
        data = tomllib.loads(course_toml.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CourseError(f"{course_toml}: {exc}") from exc
    assignments = [
        load_assignment_meta(sub)
        for sub in sorted(folder.iterdir())
        if (sub / "assignment.toml").is_file()
    ]
    assignments.sort(key=lambda a: (a.position, a.slug))
    return CourseMeta(data["slug"], data["title"], folder.resolve(), tuple(assignments))


def import_file(name: str, path: Path) -> types.ModuleType:
    """Import a course file (trusted code) under a name of its own."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CourseError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class LoadedAssignment:
    """An assignment with its hidden tests built: only ever in the trusted grader."""

    meta: AssignmentMeta
    exercises: dict[str, ExerciseSpec]
    seeds: list[int]
    reference: types.ModuleType


def load_assignment(folder: Path, version: str | None = None) -> LoadedAssignment:
    """The assignment in `folder`, loaded once per version of the folder.

    version: the folder's `folder_version` when the caller knows it (the worker's cache
    checked it when it unpacked the bundle); else the folder is hashed, which reads
    every file of it.
    """
    return _load_assignment_cached(folder.resolve(), version or folder_version(folder))


@lru_cache(maxsize=32)
def _load_assignment_cached(folder: Path, version: str) -> LoadedAssignment:
    meta = load_assignment_meta(folder)
    if meta.public_dir.is_dir() and str(meta.public_dir) not in sys.path:
        sys.path.insert(0, str(meta.public_dir))
    key = meta.slug.replace("-", "_") + "_" + version
    reference = import_file(f"_dlp_reference_{key}", folder / "reference.py")
    tests = import_file(f"_dlp_tests_{key}", folder / "tests.py")
    suite = getattr(tests, "suite", None)
    if not isinstance(suite, Suite):
        raise CourseError(f"{folder / 'tests.py'} does not define `suite = Suite()`")
    exercises: dict[str, ExerciseSpec] = {}
    for ex in meta.exercises:
        if ex.kind in UNTESTED_KINDS:
            exercises[ex.slug] = ExerciseSpec(
                ex.slug, ex.kind, ex.points, [], ex.requires, ex.device, ex.timeout
            )
            continue
        if ex.slug not in suite.builders:
            raise CourseError(f"{folder / 'tests.py'} has no tests for exercise {ex.slug!r}")
        build, extra_requires = suite.builders[ex.slug]
        # Names the submission must define: the toml's and the suite's, else the slug.
        requires = tuple(dict.fromkeys((*ex.requires, *extra_requires))) or (
            (ex.slug,) if ex.kind in ("function", "class") else ()
        )
        spec = ExerciseSpec(ex.slug, ex.kind, ex.points, [], requires, ex.device, ex.timeout)
        build(ExerciseBuilder(spec, reference))
        total = sum(t.points for t in spec.tests)
        if abs(total - ex.points) > 1e-9:
            raise CourseError(
                f"{folder / 'tests.py'}: the tests of {ex.slug!r} are worth {total:g} points, "
                f"assignment.toml says {ex.points:g}"
            )
        exercises[ex.slug] = spec
    unknown = set(suite.builders) - set(exercises)
    if unknown:
        raise CourseError(
            f"{folder / 'tests.py'} has tests for unknown exercises {sorted(unknown)}"
        )
    return LoadedAssignment(meta, exercises, suite.seeds, reference)
