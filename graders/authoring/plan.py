"""What an import makes of a source notebook, before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class AuthoringError(Exception):
    """The source cannot be imported; the message is a sentence for the instructor."""


@dataclass
class PlannedTest:
    name: str
    source: str
    #: How many reference cells come before the test.
    position: int
    style: str  # assert | ok | exception
    visibility: str  # visible | hidden
    #: Lines of `source` (1-based) that students never see.
    hidden_lines: tuple[int, ...] = ()
    points: float = 0.0
    failure_message: str = ""
    origin: str = ""


@dataclass
class PlannedExercise:
    slug: str
    kind: str  # function (autograded) | manual
    points: float
    origin: str
    tests: list[PlannedTest] = field(default_factory=list)
    requires: tuple[str, ...] = ()


@dataclass
class RefSource:
    kind: str  # setup | solution
    label: str
    source: str


@dataclass
class ImportPlan:
    fmt: str  # nbgrader | otter
    title: str
    ref_cells: list[RefSource] = field(default_factory=list)
    exercises: list[PlannedExercise] = field(default_factory=list)
    #: Output notebooks' cells (nbformat nodes) and the source notebook's metadata.
    starter: list[Any] = field(default_factory=list)
    solution: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Lines a student must never read: solutions and hidden tests (stripped).
    secret_lines: set[str] = field(default_factory=set)
    #: Lines of the source that students do read anyway (a secret line may repeat one).
    public_lines: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    per_assert: bool = False

    def exercise(self, slug: str) -> PlannedExercise | None:
        return next((e for e in self.exercises if e.slug == slug), None)

    def add_exercise(self, exercise: PlannedExercise) -> PlannedExercise:
        if not SLUG.match(exercise.slug):
            raise AuthoringError(
                f"{exercise.origin}: {exercise.slug!r} cannot be an exercise slug (letters, "
                "digits, '_', '-' and '.', starting with a letter or digit)"
            )
        if self.exercise(exercise.slug) is not None:
            raise AuthoringError(
                f"{exercise.origin}: the name {exercise.slug!r} is used twice; "
                "each graded cell or question needs a name of its own"
            )
        self.exercises.append(exercise)
        return exercise
