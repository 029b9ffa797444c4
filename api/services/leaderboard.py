"""A leaderboard per model exercise: pseudonymous, best score per student.

Ranking: the best graded score of each student on the exercise, ties broken by the
earlier submission; submissions the service failed to grade are not ranked. When the
exercise's tests are split into `public: ...` and `private: ...` tests (held-out data
split in two), the board ranks by the public part until the deadline and shows the
private part (and ranks by it) once the deadline has passed or results are released.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from api.schemas import Leaderboard, LeaderboardRow
from api.services.access import Membership, get_assignment, is_revealed
from core.errors import NotFound
from core.models import Enrollment, GradingJob, Submission, TestResult, User, utcnow


def _split(results: list[TestResult]) -> tuple[float, float | None, float | None]:
    total = sum(r.score for r in results)
    public = [r.score for r in results if r.name.lower().startswith("public")]
    private = [r.score for r in results if r.name.lower().startswith("private")]
    return total, (sum(public) if public else None), (sum(private) if private else None)


def leaderboard(db: Session, member: Membership, assignment: str, exercise: str) -> Leaderboard:
    target = get_assignment(db, member.course, assignment)
    spec = next((e for e in target.exercises if e.slug == exercise), None)
    if spec is None:
        raise NotFound(f"{target.slug} has no exercise {exercise[:64]!r}.")
    now = utcnow()
    revealed = is_revealed(target, member.is_staff, target.due_at, now)
    rows = db.execute(
        select(Submission, GradingJob)
        .join(GradingJob, GradingJob.id == Submission.current_job_id)
        .where(Submission.assignment_id == target.id, GradingJob.status == "graded")
        .options(selectinload(GradingJob.results))  # one query for all results, not one a row
    ).all()
    students = {
        e.user_id: e
        for e in db.scalars(
            select(Enrollment).where(
                Enrollment.course_id == member.course.id, Enrollment.role == "student"
            )
        )
    }
    names = dict(db.execute(select(User.id, User.name).where(User.id.in_(students))).all())
    best: dict[int, tuple[float, datetime, LeaderboardRow]] = {}
    has_split = False
    for submission, job in rows:
        if submission.user_id not in students:
            continue
        results = [r for r in job.results if r.exercise_slug == exercise]
        if not results:
            continue
        total, public, private = _split(results)
        has_split = has_split or public is not None
        key_score = (
            public
            if (public is not None and not revealed)
            else (private if private is not None else total)
        )
        mine = submission.user_id == member.user.id
        name = (
            names[submission.user_id]
            if member.is_staff or mine
            else students[submission.user_id].pseudonym
        )
        row = LeaderboardRow(
            rank=0,
            name=name,
            score=round(key_score, 6),
            public_score=public,
            private_score=private if revealed else None,
            submitted_at=submission.submitted_at,
            submission_id=submission.id if member.is_staff or mine else None,
            you=mine,
        )
        current = best.get(submission.user_id)
        if current is None or (key_score, -submission.submitted_at.timestamp()) > (
            current[0],
            -current[1].timestamp(),
        ):
            best[submission.user_id] = (key_score, submission.submitted_at, row)
    ordered = sorted(best.values(), key=lambda item: (-item[0], item[1]))
    board = []
    for position, (_, _, row) in enumerate(ordered, start=1):
        row.rank = position
        board.append(row)
    ranked_by = "score" if not has_split else ("private" if revealed else "public")
    return Leaderboard(exercise=exercise, max_score=spec.max_score, ranked_by=ranked_by, rows=board)
