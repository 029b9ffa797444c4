"""Manual grading over HTTP against the distributed stack (PostgreSQL, Redis, Celery
workers): the grading list, the rendered answer, the rubric, grades; the gradebook CSV;
roles; the release; the order of the list; grades that follow a resubmitted answer.

Each test works in a course of its own (a copy of hw2 with its rubric), so the tests
do not see each other's submissions."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core.models import Assignment, AuditEvent, Course
from core.rubrics import sync_rubric
from graders.course import load_assignment_meta
from tests.support.notebooks import course_notebook
from tests.support.paths import HW2, HW2_DIR
from tests.support.stack import Stack, dump
from tests.support.staffing import clone_course, stack_db, wait_graded
from tests.test_manual_grading_units import assert_inert, hostile_notebook

SLUG = "saliency-discussion"
RUBRIC = {i.id: i.points for i in load_assignment_meta(HW2_DIR).exercises[-1].rubric.items}  # type: ignore[union-attr]


@dataclass
class Course_:
    stack: Stack
    slug: str
    students: list[str]
    tas: list[str]

    def url(self, tail: str) -> str:
        return f"/api/v1/courses/{self.slug}/assignments/{HW2}/exercises/{SLUG}/{tail}"

    def as_(self, user: str | None) -> httpx.Client:
        return self.stack.client(user)

    def submit(self, user: str, data: bytes, name: str = "hw2.ipynb") -> str:
        with self.as_(user) as c:
            response = c.post(
                f"/api/v1/courses/{self.slug}/assignments/{HW2}/submissions",
                files={"file": (name, data)},
            )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])


def answer_notebook(text: str, extra: str = "") -> bytes:
    """A small notebook: a tagged discussion and a tagged plot cell (no functions, so the
    automatic tests grade it 0 quickly), and optionally an untagged cell."""
    cells = [
        {"cell_type": "markdown", "metadata": {"tags": [SLUG]}, "source": text},
        {
            "cell_type": "code",
            "metadata": {"tags": [SLUG]},
            "execution_count": 1,
            "source": "print('maps')",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "maps\n"}],
        },
    ]
    if extra:
        cells.append(
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": None,
                "source": extra,
                "outputs": [],
            }
        )
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}).encode()


def new_course(stack: Stack, students: int, tas: int = 2) -> Course_:
    """A course of its own: a copy of hw2 with the rubric of its assignment.toml."""
    tag = uuid.uuid4().hex[:6]
    slug = f"mg-{tag}"
    names = [f"mg{tag}s{i}" for i in range(students)]
    staff = [f"mg{tag}t{i}" for i in range(tas)]
    clone_course(
        stack,
        slug,
        {**{n: "student" for n in names}, **{t: "ta" for t in staff}, f"mg{tag}i": "instructor"},
        assignments=(HW2,),
    )
    meta = load_assignment_meta(HW2_DIR)
    with stack_db(stack) as db:
        course = db.scalar(select(Course).where(Course.slug == slug))
        assert course is not None
        assignment = db.scalar(select(Assignment).where(Assignment.course_id == course.id))
        assert assignment is not None
        for exercise in assignment.exercises:
            spec = next(e for e in meta.exercises if e.slug == exercise.slug)
            sync_rubric(db, exercise, spec.rubric)
    return Course_(stack, slug, names, staff)


def graded(course: Course_, user: str, submission_id: str) -> dict[str, Any]:
    return wait_graded(course.stack, user, submission_id, staff=course.tas[0])


def grading_list(course: Course_, ta: str, **params: Any) -> list[dict[str, Any]]:
    with course.as_(ta) as c:
        response = c.get(course.url("grading"), params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


def put_grade(
    course: Course_, ta: str | None, submission_id: str, body: dict[str, Any], exercise: str = SLUG
) -> httpx.Response:
    with course.as_(ta) as c:
        return c.put(f"/api/v1/submissions/{submission_id}/exercises/{exercise}/manual", json=body)


def get_answer(
    course: Course_, user: str | None, submission_id: str, **params: Any
) -> httpx.Response:
    with course.as_(user) as c:
        return c.get(f"/api/v1/submissions/{submission_id}/exercises/{SLUG}/answer", params=params)


def gradebook(course: Course_, fmt: str) -> list[dict[str, str]]:
    with course.as_(course.tas[0]) as c:
        response = c.get(f"/api/v1/courses/{course.slug}/gradebook.csv", params={"format": fmt})
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


def manual_part(body: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in body["exercises"] if e["slug"] == SLUG)


@pytest.fixture
def course(pg_stack: Stack) -> Iterator[Course_]:
    yield new_course(pg_stack, students=2)


def test_grading_flow_gradebook_and_rubric_change(course: Course_) -> None:
    ann, ben = course.students
    tina = course.tas[0]
    ann_id = course.submit(ann, course_notebook(HW2, "solution"))
    ben_id = course.submit(ben, answer_notebook("Grad-CAM is *coarse*."))
    ann_view, _ = graded(course, ann, ann_id), graded(course, ben, ben_id)
    # Automatic grading skips the manual exercise: the solution has every automatic mark.
    assert ann_view["max_score"] == pytest.approx(13) and ann_view["score"] == pytest.approx(10)
    assert not ann_view["cells"], dump(ann_view)  # the plot cell ran in the sandbox

    entries = grading_list(course, tina)
    assert sorted(e["submission_id"] for e in entries) == sorted([ann_id, ben_id])
    assert all(not e["graded"] and e["score"] is None for e in entries)
    assert {e["student"] for e in entries} == {ann, ben}

    answer = get_answer(course, tina, ann_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "Resolution" in body["html"] and 'src="data:image/png;base64,' in body["html"]
    assert body["cells"] == 2 and body["grade"] is None and body["max_score"] == 3
    assert [i["id"] for i in body["rubric"]] == list(RUBRIC)
    assert_inert(body["html"])

    with course.as_(tina) as c:
        rubric = c.get(course.url("rubric"))
    assert rubric.status_code == 200 and [i["id"] for i in rubric.json()] == list(RUBRIC)

    grade = put_grade(
        course,
        tina,
        ann_id,
        {"rubric": ["resolution", "predicted-class"], "adjustment": 0.5, "comment": "Good maps."},
    )
    assert grade.status_code == 200, grade.text
    assert grade.json()["score"] == 2.5 and grade.json()["grader"] == tina
    ben_grade = put_grade(
        course,
        tina,
        ben_id,
        {"rubric": ["resolution", "unsupported-claim"], "adjustment": 0, "comment": ""},
    )
    assert ben_grade.json()["score"] == 0.5
    # Unknown item: 422 with a sentence; an automatic or unknown exercise: 404.
    bad = put_grade(course, tina, ann_id, {"rubric": ["nope"], "adjustment": 0, "comment": ""})
    assert bad.status_code == 422 and "nope" in bad.json()["detail"]
    for exercise in ("fgsm", "no-such-exercise"):
        missing = put_grade(course, tina, ann_id, {"rubric": []}, exercise=exercise)
        assert missing.status_code == 404, missing.text
    assert {e["submission_id"]: (e["graded"], e["score"]) for e in grading_list(course, tina)} == {
        ann_id: (True, 2.5),
        ben_id: (True, 0.5),
    }

    # The submission's results and total carry the manual grade (staff view).
    with course.as_(tina) as c:
        staff_view = c.get(f"/api/v1/submissions/{ann_id}").json()
    part = manual_part(staff_view)
    assert part["score"] == 2.5 and part["manual"]["comment"] == "Good maps."
    assert [t["name"].split(":")[0] for t in part["tests"]] == ["resolution", "predicted-class"]
    assert staff_view["score"] == pytest.approx(12.5)

    # The gradebook, wide and long, counts the manual points in the assignment's total.
    wide = {r["student"]: r for r in gradebook(course, "wide")}
    assert float(wide[ann][f"{HW2}/{SLUG}"]) == 2.5
    assert float(wide[ann][HW2]) == pytest.approx(12.5)
    assert float(wide[ben][f"{HW2}/{SLUG}"]) == 0.5
    long = {(r["student"], r["exercise"]): r for r in gradebook(course, "long")}
    assert float(long[(ann, SLUG)]["score"]) == 2.5
    assert float(long[(ann, SLUG)]["max_score"]) == 3
    assert long[(ann, SLUG)]["submission_id"] == ann_id

    # A rubric change rescores every answer graded with a changed item (and only those).
    changed = [
        {"id": i, "points": 1.5 if i == "resolution" else p, "description": i}
        for i, p in RUBRIC.items()
    ]
    with course.as_(tina) as c:
        put = c.put(course.url("rubric"), json=changed)
    assert put.status_code == 200, put.text
    assert put.headers["X-Rescored"] == "2"
    scores = {e["submission_id"]: e["score"] for e in grading_list(course, tina)}
    assert scores == {ann_id: 3.0, ben_id: 1.0}  # ann: 1.5 + 1 + 0.5 = 3 (the ceiling)
    assert float({r["student"]: r for r in gradebook(course, "wide")}[ben][f"{HW2}/{SLUG}"]) == 1.0
    removed = [i for i in changed if i["id"] != "unsupported-claim"]
    with course.as_(tina) as c:
        assert c.put(course.url("rubric"), json=removed).status_code == 200
    assert {e["submission_id"]: e["score"] for e in grading_list(course, tina)}[ben_id] == 1.5

    # Refusals of a rubric: duplicate ids, an infinite number, too many items.
    for refused in (
        [changed[0], changed[0]],
        [{"id": "a", "points": 1e999}],
        [{"id": f"i{n}", "points": 1} for n in range(51)],
        [{"id": "", "points": 1}],
    ):
        with course.as_(tina) as c:
            response = c.put(
                course.url("rubric"),
                content=json.dumps(refused),
                headers={"Content-Type": "application/json"},
            )
        assert response.status_code == 422, (refused, response.text)

    # The audit log: who graded what, every rubric change.
    with stack_db(course.stack) as db:
        events = db.execute(
            select(AuditEvent.action, AuditEvent.target, AuditEvent.details).where(
                AuditEvent.action.in_(["manual.grade", "rubric.replace"]),
                AuditEvent.target.contains(SLUG),
            )
        ).all()
    actions = [(a, t) for a, t, _ in events]
    assert ("manual.grade", f"{ann_id}/{SLUG}") in actions
    assert actions.count(("rubric.replace", f"{HW2}/{SLUG}")) == 2
    assert any(d.get("changed") == ["resolution"] for a, _, d in events if a == "rubric.replace")


def test_a_hostile_answer_is_shown_inert_and_within_the_cap(course: Course_) -> None:
    from api.services.manual.render import MAX_HTML_CHARS

    ann = course.students[0]
    sid = course.submit(ann, hostile_notebook(5_000_000))
    assert graded(course, ann, sid)["status"] == "graded"
    response = get_answer(course, course.tas[0], sid)
    assert response.status_code == 200, response.text
    html = response.json()["html"]
    assert_inert(html)
    assert len(html) < MAX_HTML_CHARS and len(response.content) < MAX_HTML_CHARS + 10_000
    assert "An image of 5.0 MB was left out" in html
    assert "&lt;script&gt;" in html  # shown as text, never as an element


def test_roles_and_the_release(course: Course_, pg_stack: Stack) -> None:
    ann, ben = course.students
    tina = course.tas[0]
    outsider = new_course(pg_stack, students=0, tas=1).tas[0]
    sid = course.submit(ann, answer_notebook("Both maps agree on the class."))
    before = graded(course, ann, sid)
    grade = put_grade(
        course,
        tina,
        sid,
        {"rubric": ["resolution", "failure-case"], "adjustment": 0, "comment": "Name the class."},
    )
    assert grade.status_code == 200 and grade.json()["score"] == 2

    some_grade = {"rubric": ["resolution"], "adjustment": 3, "comment": "me"}
    # Another student: the submission does not exist for them; staff routes are 403.
    assert get_answer(course, ben, sid).status_code == 404
    assert put_grade(course, ben, sid, some_grade).status_code == 404
    # The owner cannot grade their own answer.
    assert put_grade(course, ann, sid, some_grade).status_code == 403
    for user, status in ((ben, 403), (ann, 403), (outsider, 403), (None, 401)):
        with course.as_(user) as c:
            assert c.get(course.url("grading")).status_code == status, user
            assert c.get(course.url("rubric")).status_code == status, user
            assert c.put(course.url("rubric"), json=[]).status_code == status, user
    # A TA of another course: the submission does not exist for them.
    assert get_answer(course, outsider, sid).status_code == 404
    assert put_grade(course, outsider, sid, some_grade).status_code == 404
    assert get_answer(course, None, sid).status_code == 401
    assert put_grade(course, None, sid, some_grade).status_code == 401

    # Before the release the owner sees their answer, not its grade.
    own = get_answer(course, ann, sid).json()
    assert own["grade"] is None and own["rubric"] == [] and "released" in own["note"]
    assert "Both maps agree" in own["html"]
    with course.as_(ann) as c:
        hidden = c.get(f"/api/v1/submissions/{sid}").json()
    part = manual_part(hidden)
    assert part["score"] is None and part["tests"] == [] and "released" in part["manual"]["note"]
    assert hidden["score"] == before["score"] == 0 and hidden["max_score"] == 13
    assert "Name the class" not in json.dumps(hidden)

    with course.as_(tina) as c:
        released = c.patch(
            f"/api/v1/courses/{course.slug}/assignments/{HW2}", json={"released": True}
        )
    assert released.status_code == 200, released.text
    shown = get_answer(course, ann, sid).json()
    assert shown["grade"]["score"] == 2 and shown["grade"]["comment"] == "Name the class."
    assert [i["id"] for i in shown["grade"]["applied"]] == ["resolution", "failure-case"]
    with course.as_(ann) as c:
        after = c.get(f"/api/v1/submissions/{sid}").json()
    part = manual_part(after)
    assert part["score"] == 2 and part["manual"]["comment"] == "Name the class."
    assert [t["name"].split(":")[0] for t in part["tests"]] == ["resolution", "failure-case"]
    assert after["score"] == 2


def test_each_grader_has_a_stable_order_of_their_own(pg_stack: Stack) -> None:
    course = new_course(pg_stack, students=7)
    ids = {course.submit(s, answer_notebook(f"Answer of {s}.")): s for s in course.students}
    for sid, student in ids.items():
        graded(course, student, sid)
    first, second = course.tas
    mine = [e["submission_id"] for e in grading_list(course, first)]
    assert sorted(mine) == sorted(ids)
    assert [e["submission_id"] for e in grading_list(course, first)] == mine
    theirs = [e["submission_id"] for e in grading_list(course, second)]
    assert sorted(theirs) == sorted(mine) and theirs != mine  # 1 chance in 5040 to be equal

    # Anonymous: pseudonyms, the same on each visit, until the answer is graded.
    anonymous = grading_list(course, first, anonymous="true")
    assert [e["submission_id"] for e in anonymous] == mine
    assert not {e["student"] for e in anonymous} & set(course.students)
    assert grading_list(course, first, anonymous="true") == anonymous
    one = anonymous[0]["submission_id"]
    alias = get_answer(course, first, one, anonymous="true").json()["student"]
    assert alias == anonymous[0]["student"]
    assert put_grade(course, first, one, {"rubric": ["resolution"]}).status_code == 200
    now = {e["submission_id"]: e["student"] for e in grading_list(course, first, anonymous="true")}
    assert now[one] == ids[one]
    assert get_answer(course, first, one, anonymous="true").json()["student"] == ids[one]


def test_grades_follow_the_answer_across_regrades_and_resubmissions(course: Course_) -> None:
    ann = course.students[0]
    tina = course.tas[0]
    text = "Grad-CAM is coarse; IG is per pixel."
    first = course.submit(ann, answer_notebook(text))
    graded(course, ann, first)
    assert (
        put_grade(
            course, tina, first, {"rubric": ["resolution", "predicted-class"], "comment": "ok"}
        ).json()["score"]
        == 2
    )

    # A regrade of the automatic tests keeps the manual grade.
    with course.as_(tina) as c:
        assert c.post(f"/api/v1/submissions/{first}/regrade", json={}).status_code == 202
    wait_graded(course.stack, ann, first, jobs=2, staff=tina)
    assert [(e["submission_id"], e["graded"], e["score"]) for e in grading_list(course, tina)] == [
        (first, True, 2)
    ]

    # Resubmitted with the same tagged cells (an untagged cell added): the grade carries.
    same = course.submit(ann, answer_notebook(text, extra="x = 1"))
    graded(course, ann, same)
    (entry,) = grading_list(course, tina)
    assert (entry["submission_id"], entry["graded"], entry["score"], entry["needs_review"]) == (
        same,
        True,
        2,
        False,
    )
    carried = get_answer(course, tina, same).json()["grade"]
    assert carried["carried_from"] == first and carried["comment"] == "ok"

    # Resubmitted with a changed answer: the earlier grade stands, marked for review.
    changed = course.submit(ann, answer_notebook(text + " Also: a failure case."))
    graded(course, ann, changed)
    (entry,) = grading_list(course, tina)
    assert (entry["submission_id"], entry["graded"], entry["score"], entry["needs_review"]) == (
        changed,
        False,
        2,
        True,
    )
    wide = {r["student"]: r for r in gradebook(course, "wide")}
    assert float(wide[ann][f"{HW2}/{SLUG}"]) == 2
    regraded = put_grade(
        course, tina, changed, {"rubric": ["resolution", "predicted-class", "failure-case"]}
    )
    assert regraded.json()["score"] == 3 and regraded.json()["needs_review"] is False
    (entry,) = grading_list(course, tina)
    assert (entry["graded"], entry["score"], entry["needs_review"]) == (True, 3, False)


def test_a_late_answer_loses_the_same_share_of_its_manual_points(pg_stack: Stack) -> None:
    course = new_course(pg_stack, students=1)
    ann, tina = course.students[0], course.tas[0]
    with course.as_(tina) as c:
        response = c.patch(
            f"/api/v1/courses/{course.slug}/assignments/{HW2}",
            json={"due_at": "2026-01-01T00:00:00+00:00"},
        )
    assert response.status_code == 200, response.text
    sid = course.submit(ann, answer_notebook("Late but thoughtful."))
    view = graded(course, ann, sid)
    penalty = view["penalty_percent"]
    assert penalty == 50  # hw2: 10 % a day, at most 50 %
    assert (
        put_grade(course, tina, sid, {"rubric": ["resolution", "failure-case"]}).json()["score"]
        == 2
    )
    (row,) = [r for r in gradebook(course, "long") if r["exercise"] == SLUG]
    assert (float(row["raw_score"]), float(row["penalty_percent"]), float(row["score"])) == (
        2,
        50,
        1,
    )
    wide = {r["student"]: r for r in gradebook(course, "wide")}
    assert float(wide[ann][f"{HW2}/{SLUG}"]) == 1 and float(wide[ann][HW2]) == 1
    with course.as_(tina) as c:
        body = c.get(f"/api/v1/submissions/{sid}").json()
    assert body["raw_score"] == 2 and body["score"] == 1
