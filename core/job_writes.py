"""The worker's two writes of every job, claim and finish, in as few statements as they need.

Both run once per graded job, so they are Core statements built once on one connection:
through the ORM (loads, lazy loads of the submission and assignment, the unit of work)
they cost 10 ms (the claim and the reads after it) and 17 ms (finish) of the worker's
CPU per job. The rules are those of core/jobs.py:

- claim: one conditional UPDATE ... RETURNING takes a waiting job (or one whose holder's
  lease ran out) and adds one to its attempt; a second delivery finds nothing to take.
- finish: one conditional UPDATE writes the scores only while the same claim (attempt)
  still holds the running job, and takes the row's lock (PostgreSQL) or the database's
  write lock (SQLite) before anything else is written; the results and the
  submission's score pointer follow in the same transaction.

Each announces the change (core/notify.py) with its commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Executable,
    Row,
    and_,
    bindparam,
    func,
    insert,
    select,
    update,
)

from core import notify, policy
from core.db import table
from core.models import (
    Assignment,
    AssignmentVersion,
    Exercise,
    Extension,
    GradingJob,
    Submission,
    TestResult,
    utcnow,
)
from core.settings import get_settings
from graders.outcome import TestOutcome


@dataclass(frozen=True)
class Claim:
    job_id: str
    attempt: int


@dataclass(frozen=True)
class JobInput:
    """What grading a job needs to know."""

    #: The assignment folder's name (as it was stored with its bundle, when it was).
    assignment_slug: str
    file_kind: str
    sha256: str
    exercise_slugs: list[str] | None
    #: The version the job names and its bundle in the blob store. Without either
    #: (benches, tools), the worker reads the assignment from settings.course_dir.
    assignment_version: str | None = None
    bundle_sha256: str | None = None


# -- statements, built once ------------------------------------------------------------------
_jobs, _submissions, _assignments = table(GradingJob), table(Submission), table(Assignment)


@lru_cache
def _claim_statement() -> Executable:
    now: BindParameter[datetime] = bindparam("now")
    return (
        update(_jobs)
        .where(
            _jobs.c.id == bindparam("job_id"),
            (_jobs.c.status == "queued")
            | ((_jobs.c.status == "running") & (_jobs.c.lease_expires_at < now)),
        )
        .values(
            status="running",
            attempt=_jobs.c.attempt + 1,
            started_at=now,
            worker_host=bindparam("host"),
            lease_expires_at=bindparam("lease"),
        )
        .returning(_jobs.c.attempt, _jobs.c.submission_id)
    )


@lru_cache
def _claimed_statement() -> Executable:
    versions = table(AssignmentVersion)
    version = func.coalesce(
        func.nullif(_jobs.c.assignment_version, ""), func.nullif(_assignments.c.version, "")
    )
    return (
        select(
            _submissions.c.file_kind,
            _submissions.c.sha256,
            _jobs.c.exercise_slugs,
            _assignments.c.slug,
            version.label("version"),
            versions.c.slug.label("bundle_slug"),
            versions.c.bundle_sha256,
        )
        .select_from(_jobs)
        .join(_submissions, _submissions.c.id == _jobs.c.submission_id)
        .join(_assignments, _assignments.c.id == _submissions.c.assignment_id)
        .outerjoin(versions, versions.c.version == version)
        .where(_jobs.c.id == bindparam("job_id"))
    )


@lru_cache
def _finish_facts_statement() -> Executable:
    extensions = table(Extension)
    return (
        select(
            _jobs.c.exercise_slugs,
            _jobs.c.submission_id,
            _submissions.c.submitted_at,
            _submissions.c.current_job_id,
            _submissions.c.assignment_id,
            _assignments.c.due_at,
            _assignments.c.late_policy,
            extensions.c.due_at.label("extended_due_at"),
        )
        .select_from(_jobs)
        .join(_submissions, _submissions.c.id == _jobs.c.submission_id)
        .join(_assignments, _assignments.c.id == _submissions.c.assignment_id)
        .outerjoin(
            extensions,
            and_(
                extensions.c.assignment_id == _assignments.c.id,
                extensions.c.user_id == _submissions.c.user_id,
            ),
        )
        .where(_jobs.c.id == bindparam("job_id"))
    )


@lru_cache
def _insert_results() -> Executable:
    return insert(table(TestResult))


@lru_cache
def _point_submission() -> Executable:
    return (
        update(_submissions)
        .where(_submissions.c.id == bindparam("submission_id"))
        .values(current_job_id=bindparam("job_id"))
    )


# -- claim ------------------------------------------------------------------------------------
def claim_job(conn: Connection, job_id: str, host: str) -> tuple[Claim, JobInput] | None:
    """Take the job if it is waiting (or its holder's lease ran out); None otherwise."""
    now = utcnow()
    lease = now + timedelta(seconds=get_settings().lease_seconds)
    with conn.begin():
        taken = conn.execute(
            _claim_statement(), {"job_id": job_id, "now": now, "host": host, "lease": lease}
        ).first()
        if taken is None:
            return None
        attempt, submission_id = int(taken[0]), str(taken[1])
        notify.job_changed_on(conn, submission_id)
    notify.job_changed_after(conn, submission_id)
    row = conn.execute(_claimed_statement(), {"job_id": job_id}).one()
    conn.commit()  # the read's own transaction (autobegun)
    return Claim(job_id, attempt), JobInput(
        # The folder's name when it was stored (a course's copy may differ).
        assignment_slug=row.bundle_slug or row.slug,
        file_kind=row.file_kind,
        sha256=row.sha256,
        exercise_slugs=row.exercise_slugs,
        assignment_version=row.version,
        bundle_sha256=row.bundle_sha256,
    )


# -- finish -----------------------------------------------------------------------------------
def finish_job(
    conn: Connection, c: Claim, results: list[TestOutcome], facts: dict[str, Any]
) -> bool:
    """Write the results of a claim, atomically; False if the claim no longer holds."""
    known = conn.execute(_finish_facts_statement(), {"job_id": c.job_id}).first()
    conn.commit()
    if known is None:
        return False
    if known.exercise_slugs is not None and known.current_job_id:
        results = _with_kept_results(conn, known, results)
    due: datetime | None = known.extended_due_at or known.due_at
    late = policy.late_seconds(known.submitted_at, due)
    percent = policy.penalty_percent(known.late_policy or {}, late)
    raw = round(sum(r.score for r in results), 6)
    scores = {
        "status": "graded",
        "finished_at": utcnow(),
        "lease_expires_at": None,
        "raw_score": raw,
        "max_score": round(sum(r.max_score for r in results), 6),
        "late_seconds": late,
        "penalty_percent": percent,
        "score": policy.apply_penalty(raw, percent),
        "error": None,
        **facts,
    }
    with conn.begin() as transaction:
        # First: the row's lock (PostgreSQL), the write lock (SQLite), and the check
        # that this claim still holds the job, in one statement.
        written = conn.execute(
            update(_jobs)
            .where(
                _jobs.c.id == c.job_id,
                _jobs.c.attempt == c.attempt,
                _jobs.c.status == "running",
            )
            .values(**scores)
        )
        if written.rowcount != 1:
            transaction.rollback()
            return False
        if results:
            conn.execute(
                _insert_results(),
                [
                    TestResult.columns_of(r, c.job_id, position)
                    for position, r in enumerate(results)
                ],
            )
        conn.execute(
            _point_submission(), {"submission_id": known.submission_id, "job_id": c.job_id}
        )
        notify.job_changed_on(conn, known.submission_id)
    notify.job_changed_after(conn, known.submission_id)
    return True


def _with_kept_results(
    conn: Connection, known: Row[Any], results: list[TestOutcome]
) -> list[TestOutcome]:
    """A regrade of some exercises: the others keep the results they had, so the
    current job always holds the whole submission's score."""
    rows = table(TestResult)
    exercises = table(Exercise)
    kept = conn.execute(
        select(rows).where(rows.c.job_id == known.current_job_id).order_by(rows.c.position)
    ).all()
    order = {
        slug: position
        for slug, position in conn.execute(
            select(exercises.c.slug, exercises.c.position).where(
                exercises.c.assignment_id == known.assignment_id
            )
        ).all()
    }
    conn.commit()
    merged = [
        *results,
        *(TestResult.outcome_of(r) for r in kept if r.exercise_slug not in known.exercise_slugs),
    ]
    merged.sort(key=lambda r: order.get(r.exercise, len(order)))
    return merged
