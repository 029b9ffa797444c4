"""Every bundled assignment passes the instructors' self-check: the solution gets full
marks, the starter zero, each buggy variant loses points on its own exercise only, and
each alternative correct implementation gets full marks."""

from __future__ import annotations

import pytest

from graders.course import load_course
from graders.selfcheck import check_assignment
from graders.selfcheck_report import format_table
from tests.support.paths import REFERENCE
from worker.sandbox.launcher import sandbox_provider

COURSE = load_course(REFERENCE)


def test_the_course_has_all_seven_assignments() -> None:
    assert COURSE.slug == "dlp"
    slugs = [a.slug for a in COURSE.assignments]
    assert slugs == [
        "hw1-training-basics",
        "hw2-interpretability",
        "hw3-architectures",
        "hw4-small-data",
        "hw5-physics",
        "hw6-generative",
        "hw7-guarantees",
    ]


@pytest.mark.parametrize("assignment", [a.slug for a in COURSE.assignments])
def test_course_check(assignment: str) -> None:
    result = check_assignment(REFERENCE / assignment, sandbox_provider)
    table = format_table(result)
    print(table)
    assert result.ok, table
    variants = [r for r in result.rows if r.variant.startswith("variant ")]
    alternatives = [r for r in result.rows if r.variant.startswith("alternative ")]
    exercises = {v.variant.split()[1].split("__")[0] for v in variants}
    code_exercises = [
        e.slug for e in COURSE.assignment(assignment).exercises if e.kind in ("function", "class")
    ]
    assert exercises == set(code_exercises)
    assert {a.variant.split()[1].split("__")[0] for a in alternatives} == set(code_exercises)
