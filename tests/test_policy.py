"""Deadlines, extensions, late penalties, submission caps and feedback release.

The arithmetic first (no processes), then against a running service: each test has a
course of its own (tests/support/staffing.py), so moving a deadline or a cap here never
touches another test's data. The tests that grade once or twice run in-process (fast
tier); those that grade many times, against the distributed stack.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from core import policy
from core.models import GradingJob, Submission
from tests.support.inprocess import InProcessService
from tests.support.paths import HW1
from tests.support.stack import Stack, dump
from tests.support.staffing import (
    Deployment,
    clone_course,
    hw1_source,
    iso,
    parse_time,
    patch_assignment,
    stack_db,
    submit,
    wait_graded,
)

DAY = 86400
TEN_A_DAY = {"kind": "percent_per_day", "percent_per_day": 10, "max_percent": 50}
STAFF = {"tina": "ta", "ivan": "instructor"}


# -- the arithmetic -------------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-1, 0),
        (0, 0),
        (1, 10),
        (DAY - 1, 10),
        (DAY, 10),
        (DAY + 1, 20),
        (3 * DAY, 30),
        (5 * DAY + 1, 50),
        (40 * DAY, 50),
    ],
)
def test_percent_per_day_counts_each_started_day_up_to_the_cap(
    seconds: float, expected: float
) -> None:
    assert policy.penalty_percent(TEN_A_DAY, max(0.0, seconds)) == expected


@pytest.mark.fast
def test_other_policies_and_deadlines() -> None:
    due = datetime(2027, 1, 15, 23, 59, tzinfo=UTC)
    assert policy.late_seconds(due - timedelta(seconds=1), due) == 0
    assert policy.late_seconds(due, due) == 0
    assert policy.late_seconds(due + timedelta(seconds=1), due) == 1
    assert policy.late_seconds(due + timedelta(days=9), None) == 0
    assert policy.penalty_percent({"kind": "zero"}, 1) == 100
    assert policy.penalty_percent({"kind": "zero"}, 0) == 0
    assert policy.penalty_percent({"kind": "none"}, 10 * DAY) == 0
    assert policy.penalty_percent({}, 10 * DAY) == 0
    assert policy.apply_penalty(5.0, 10) == 4.5
    assert policy.apply_penalty(5.0, 100) == 0


@pytest.mark.fast
def test_late_policy_is_checked() -> None:
    assert policy.normalize_late_policy(None) == {"kind": "none"}
    assert policy.normalize_late_policy({"kind": "percent_per_day"}) == {
        "kind": "percent_per_day",
        "percent_per_day": 10.0,
        "max_percent": 100.0,
    }
    for bad in (
        {"kind": "weekly"},
        {"kind": "percent_per_day", "percent_per_day": 101},
        {"kind": "percent_per_day", "max_percent": -1},
        {"kind": "percent_per_day", "percent_per_day": "ten"},
    ):
        with pytest.raises(ValueError):
            policy.normalize_late_policy(bad)


# -- deadlines and penalties, graded by the real service -----------------------------


def regrade(stack: Deployment, submission_id: str, jobs: int, user: str = "alice") -> dict:
    with stack.client("tina") as c:
        response = c.post(
            f"/api/v1/submissions/{submission_id}/regrade", json={"reason": f"check {jobs}"}
        )
    assert response.status_code == 202, response.text
    return wait_graded(stack, user, submission_id, jobs=jobs)


def test_penalty_on_the_deadline_boundaries_and_after_it_moves(pg_stack: Stack) -> None:
    course = clone_course(
        pg_stack, "policy-boundaries", {"alice": "student", "bob": "student", **STAFF}
    )
    patch_assignment(
        pg_stack, course, due_at=iso(datetime.now(UTC) + timedelta(days=1)), late_policy=TEN_A_DAY
    )
    response = submit(pg_stack, "alice", course, hw1_source(label_smoothing=False))
    assert response.status_code == 202, response.text
    assert response.json()["late"] is False
    sid = response.json()["id"]
    body = wait_graded(pg_stack, "alice", sid)
    raw = body["raw_score"]
    assert body["status"] == "graded" and raw > 0, dump(body)
    assert body["penalty_percent"] == 0 and body["score"] == raw and body["late"] is False
    t = parse_time(body["submitted_at"])

    def moved(due: datetime, jobs: int) -> dict:
        patch_assignment(pg_stack, course, due_at=iso(due))
        return regrade(pg_stack, sid, jobs)

    # Exactly on the deadline, and one second before it: on time.
    for jobs, due in ((2, t), (3, t + timedelta(seconds=1))):
        body = moved(due, jobs)
        assert (body["late"], body["late_seconds"], body["penalty_percent"]) == (False, 0, 0)
        assert body["score"] == pytest.approx(raw)
    # One second after it: a started day, 10 %.
    body = moved(t - timedelta(seconds=1), 4)
    assert body["late"] is True and body["late_seconds"] == pytest.approx(1.0)
    assert body["penalty_percent"] == 10 and body["raw_score"] == pytest.approx(raw)
    assert body["score"] == pytest.approx(raw * 0.9)
    # A day and a second: two started days.
    body = moved(t - timedelta(days=1, seconds=1), 5)
    assert body["penalty_percent"] == 20 and body["score"] == pytest.approx(raw * 0.8)

    # An extension for alice only, granted with a regrade of her submissions.
    with pg_stack.client("tina") as c:
        response = c.put(
            f"/api/v1/courses/{course}/assignments/{HW1}/extensions/alice",
            json={"due_at": iso(t + timedelta(seconds=1)), "regrade": True},
        )
    assert response.status_code == 200, response.text
    assert response.json()["batch_id"]
    body = wait_graded(pg_stack, "alice", sid, jobs=6)
    assert (body["late"], body["penalty_percent"], body["score"]) == (False, 0, pytest.approx(raw))
    with pg_stack.client("alice") as c:
        mine = c.get(f"/api/v1/courses/{course}/assignments/{HW1}").json()
    assert parse_time(mine["your_due_at"]) == t + timedelta(seconds=1)
    assert parse_time(mine["due_at"]) == t - timedelta(days=1, seconds=1)

    # Removing it (and regrading) brings the assignment's deadline back.
    with pg_stack.client("tina") as c:
        response = c.delete(
            f"/api/v1/courses/{course}/assignments/{HW1}/extensions/alice",
            params={"regrade": "true"},
        )
    assert response.status_code == 200, response.text
    body = wait_graded(pg_stack, "alice", sid, jobs=7)
    assert body["penalty_percent"] == 20

    # A zero policy: a late submission is worth nothing, its raw score is kept.
    patch_assignment(pg_stack, course, late_policy={"kind": "zero"})
    body = regrade(pg_stack, sid, 8)
    assert (body["penalty_percent"], body["score"]) == (100, 0)
    assert body["raw_score"] == pytest.approx(raw)

    with pg_stack.client("alice") as c:
        history = c.get(f"/api/v1/submissions/{sid}/history").json()
    assert [h["penalty_percent"] for h in history] == [0, 0, 0, 10, 20, 0, 20, 100]
    assert [h["score_after"] for h in history] == pytest.approx(
        [raw, raw, raw, raw * 0.9, raw * 0.8, raw, raw * 0.8, 0]
    )
    assert [h["score_before"] for h in history[1:]] == pytest.approx(
        [h["score_after"] for h in history[:-1]]
    )
    assert history[0]["score_before"] is None and history[-1]["current"] is True


@pytest.mark.fast
def test_a_late_submission_is_penalized_when_graded_unless_extended(
    service: InProcessService,
) -> None:
    course = clone_course(service, "policy-late", {"alice": "student", "bob": "student", **STAFF})
    patch_assignment(
        service, course, due_at=iso(datetime.now(UTC) - timedelta(hours=1)), late_policy=TEN_A_DAY
    )
    with service.client("tina") as c:
        response = c.put(
            f"/api/v1/courses/{course}/assignments/{HW1}/extensions/bob",
            json={"due_at": iso(datetime.now(UTC) + timedelta(days=2))},
        )
    assert response.status_code == 200, response.text
    late = submit(service, "alice", course, hw1_source())
    on_time = submit(service, "bob", course, hw1_source())
    assert late.json()["late"] is True and on_time.json()["late"] is False
    a = wait_graded(service, "alice", late.json()["id"])
    b = wait_graded(service, "bob", on_time.json()["id"])
    assert a["late"] is True and a["late_seconds"] > 3000 and a["penalty_percent"] == 10
    assert a["score"] == pytest.approx(a["raw_score"] * 0.9)
    assert b["late"] is False and b["penalty_percent"] == 0 and b["score"] == b["raw_score"]
    with service.client("ivan") as c:
        audit = c.get(f"/api/v1/courses/{course}/audit").json()
    actions = [e["action"] for e in audit]
    assert actions[:2] == ["set_extension", "update_assignment"], actions
    assert audit[0]["actor"] == "tina" and audit[0]["target"].endswith("student:bob")


@pytest.mark.fast
def test_assignment_settings_are_validated(service: InProcessService) -> None:
    course = clone_course(service, "policy-validation", {"alice": "student", **STAFF})
    url = f"/api/v1/courses/{course}/assignments/{HW1}"
    with service.client("tina") as c:
        for body, words in [
            ({"due_at": "2027-01-01T00:00:00"}, "timezone"),
            ({"due_at": "next friday"}, "due_at"),
            ({"late_policy": {"kind": "weekly"}}, "late_policy"),
            ({"late_policy": {"kind": "percent_per_day", "percent_per_day": 150}}, "100"),
            ({"counting_policy": "median"}, "counting_policy"),
            ({"counting_policy": None}, "counting_policy"),
            ({"cap_total": -1}, "cap_total"),
            ({"deadline": "2027-01-01T00:00:00Z"}, "deadline"),
        ]:
            response = c.patch(url, json=body)
            assert response.status_code == 422, (body, response.text)
            assert words in response.json()["detail"], (body, response.json())
        assert c.patch(f"/api/v1/courses/{course}/assignments/nope", json={}).status_code == 404
        response = c.put(f"{url}/extensions/nobody", json={"due_at": "2027-01-01T00:00:00Z"})
        assert response.status_code == 404
        assert c.delete(f"{url}/extensions/alice").status_code == 404
        # Offsets are kept as instants: 00:00 at +01:00 is 23:00 the day before in UTC.
        body = c.patch(
            url,
            json={
                "due_at": "2027-02-01T00:00:00+01:00",
                "cap_total": None,
                "counting_policy": "best",
            },
        ).json()
    assert parse_time(body["due_at"]) == datetime(2027, 1, 31, 23, tzinfo=UTC)
    assert body["counting_policy"] == "best" and body["cap_total"] is None


# -- caps -------------------------------------------------------------------------------


def test_caps_count_only_what_the_service_graded(pg_stack: Stack) -> None:
    course = clone_course(pg_stack, "policy-caps", {"carol": "student", **STAFF})
    patch_assignment(pg_stack, course, cap_total=2)
    first = submit(pg_stack, "carol", course, hw1_source())
    second = submit(pg_stack, "carol", course, hw1_source())
    assert first.status_code == second.status_code == 202
    refused = submit(pg_stack, "carol", course, hw1_source())
    assert refused.status_code == 429, refused.text
    assert "all 2 submissions" in refused.json()["detail"]
    wait_graded(pg_stack, "carol", first.json()["id"])
    wait_graded(pg_stack, "carol", second.json()["id"])

    # The service failed to grade the first one (every job failed): it is refunded.
    with stack_db(pg_stack) as db:
        db.execute(
            update(GradingJob)
            .where(GradingJob.submission_id == first.json()["id"])
            .values(status="failed", error="test: worker lost", score=None)
        )
        db.execute(
            update(Submission)
            .where(Submission.id == first.json()["id"])
            .values(current_job_id=None)
        )
    with pg_stack.client("carol") as c:
        failed = c.get(f"/api/v1/submissions/{first.json()['id']}").json()
    assert failed["status"] == "failed" and failed["counts"] is False
    third = submit(pg_stack, "carol", course, hw1_source())
    assert third.status_code == 202, third.text
    assert submit(pg_stack, "carol", course, hw1_source()).status_code == 429

    # Per day: a rolling 24 hours.
    patch_assignment(pg_stack, course, cap_total=None, cap_per_day=2)
    refused = submit(pg_stack, "carol", course, hw1_source())
    assert refused.status_code == 429 and "24 hours" in refused.json()["detail"]
    assert refused.headers.get("retry-after")
    with stack_db(pg_stack) as db:
        db.execute(
            update(Submission)
            .where(Submission.id == second.json()["id"])
            .values(submitted_at=datetime.now(UTC) - timedelta(hours=25))
        )
    fourth = submit(pg_stack, "carol", course, hw1_source())
    assert fourth.status_code == 202, fourth.text
    assert submit(pg_stack, "carol", course, hw1_source()).status_code == 429
    # Lifting the caps (null) lets her submit again.
    patch_assignment(pg_stack, course, cap_per_day=None)
    assert submit(pg_stack, "carol", course, hw1_source()).status_code == 202


# -- feedback release -----------------------------------------------------------------


def names(body: dict) -> set[str]:
    return {t["name"] for ex in body["exercises"] for t in ex["tests"]}


@pytest.mark.fast
def test_hidden_tests_until_the_students_own_deadline_or_release(service: InProcessService) -> None:
    course = clone_course(
        service, "policy-release", {"alice": "student", "bob": "student", **STAFF}
    )
    patch_assignment(
        service,
        course,
        due_at=iso(datetime.now(UTC) + timedelta(days=1)),
        late_policy={"kind": "none"},
        released=False,
    )
    mine = submit(service, "alice", course, hw1_source(label_smoothing=False)).json()["id"]
    his = submit(service, "bob", course, hw1_source(label_smoothing=False)).json()["id"]
    wait_graded(service, "alice", mine)
    wait_graded(service, "bob", his)

    def view(user: str, sid: str) -> dict:
        with service.client(user) as c:
            response = c.get(f"/api/v1/submissions/{sid}")
        assert response.status_code == 200
        return dict(response.json())

    staff = view("tina", mine)
    by_visibility: dict[str, set[str]] = {}
    for ex in staff["exercises"]:
        for t in ex["tests"]:
            by_visibility.setdefault(t["visibility"], set()).add(t["name"])
    assert by_visibility.get("hidden") and by_visibility.get("after_due"), by_visibility
    visible = by_visibility["visible"]

    # Before the deadline: visible tests only; the rest as a count and points.
    before = view("alice", mine)
    assert names(before) == visible
    hidden = sum(ex["hidden_tests"]["count"] for ex in before["exercises"] if ex["hidden_tests"])
    assert hidden == len(by_visibility["hidden"]) + len(by_visibility["after_due"])
    for ours, theirs in zip(before["exercises"], staff["exercises"], strict=True):
        assert ours["score"] == theirs["score"] and ours["max_score"] == theirs["max_score"]
        shown = sum(t["max_score"] for t in ours["tests"])
        assert shown + (ours["hidden_tests"] or {}).get("max_score", 0) == pytest.approx(
            ours["max_score"]
        )
    text = str(before)
    assert not any(name in text for name in by_visibility["hidden"] | by_visibility["after_due"])

    # The deadline passes; alice has an extension, bob has not.
    patch_assignment(service, course, due_at=iso(datetime.now(UTC) - timedelta(minutes=1)))
    with service.client("tina") as c:
        assert (
            c.put(
                f"/api/v1/courses/{course}/assignments/{HW1}/extensions/alice",
                json={"due_at": iso(datetime.now(UTC) + timedelta(days=1))},
            ).status_code
            == 200
        )
    assert names(view("bob", his)) == visible | by_visibility["after_due"]
    assert names(view("alice", mine)) == visible

    # Released: everything, to everyone; withdrawn: back as it was.
    assert patch_assignment(service, course, released=True)["released"] is True
    assert names(view("alice", mine)) == names(staff)
    assert all(ex["hidden_tests"] is None for ex in view("alice", mine)["exercises"])
    patch_assignment(service, course, released=False)
    assert names(view("alice", mine)) == visible
    assert names(view("bob", his)) == visible | by_visibility["after_due"]
