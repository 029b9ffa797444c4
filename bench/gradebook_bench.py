"""Benchmark: the gradebook export of a large course, from PostgreSQL.

Builds a scratch database (migrated with the service's own Alembic migrations) and
fills it with bulk COPYs: 1,000 students x 7 assignments x 3 submissions, each graded
by a job with per-test results (some regraded, some failed, some late, a few
extensions, one assignment counting the best submission). Then times the export as the
API does it (queries + CSV), several times, and prints the median and the spread.

    .venv/bin/python bench/gradebook_bench.py [--students 1000] [--runs 15] [--keep]

Needs PostgreSQL at TEST_PG_ADMIN (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
TESTS_PER_EXERCISE = 5
NOW = datetime(2027, 4, 1, tzinfo=UTC)


def hex_id() -> str:
    return uuid.uuid4().hex


def populate(
    url: str, students: int, assignments: int, per_student: int, seed: int = 7
) -> dict[str, int]:
    """Bulk-load a course; returns the row counts."""
    import psycopg

    rng = random.Random(seed)
    counts = dict.fromkeys(("users", "submissions", "jobs", "results", "extensions"), 0)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO courses (slug, title) VALUES ('bench', 'Bench course') RETURNING id"
        )
        course_id = cur.fetchone()[0]  # type: ignore[index]
        plan = []  # (assignment id, due, [(exercise slug, kind, points)], has model)
        for a in range(assignments):
            exercises = [(f"ex{a}_{i}", "function" if i < 2 else "class", 3.0) for i in range(3)]
            if a % 2 == 0:
                exercises.append((f"model{a}", "model", 5.0))
            due = datetime(2027, 1, 10, tzinfo=UTC) + timedelta(days=14 * a)
            cur.execute(
                "INSERT INTO assignments (course_id, slug, title, position, due_at, version, "
                "max_score, late_policy, counting_policy) VALUES (%s, %s, %s, %s, %s, '', %s, "
                "%s, %s) RETURNING id",
                (
                    course_id,
                    f"hw{a + 1}",
                    f'Homework {a + 1}, part "{a + 1}"',
                    a + 1,
                    due,
                    sum(p for _, _, p in exercises),
                    '{"kind": "percent_per_day", "percent_per_day": 10, "max_percent": 50}',
                    "best" if a == 3 else "last",
                ),
            )
            assignment_id = cur.fetchone()[0]  # type: ignore[index]
            for position, (slug, kind, points) in enumerate(exercises):
                cur.execute(
                    "INSERT INTO exercises (assignment_id, slug, kind, max_score, "
                    "position, device) VALUES (%s, %s, %s, %s, %s, 'cpu')",
                    (assignment_id, slug, kind, points, position),
                )
            plan.append((assignment_id, due, exercises))

        with cur.copy("COPY users (name, full_name, email, created_at) FROM STDIN") as copy:
            for s in range(students):
                copy.write_row(
                    (f"student{s:05d}", f'Student, Number {s} "S{s}"', f"s{s}@example.org", NOW)
                )
            for staff in ("bench-ta", "bench-instructor"):
                copy.write_row((staff, staff, "", NOW))
        cur.execute("SELECT id, name FROM users WHERE name LIKE 'student%%' ORDER BY name")
        user_ids = [row[0] for row in cur.fetchall()]
        counts["users"] = len(user_ids)
        with cur.copy("COPY enrollments (course_id, user_id, role, pseudonym) FROM STDIN") as copy:
            for uid in user_ids:
                copy.write_row((course_id, uid, "student", f"anon-{uid}"))
        cur.execute(
            "INSERT INTO enrollments (course_id, user_id, role, pseudonym) "
            "SELECT %s, id, CASE WHEN name = 'bench-ta' THEN 'ta' ELSE 'instructor' END, "
            "'' FROM users WHERE name LIKE 'bench-%%'",
            (course_id,),
        )

        submissions, jobs, results, extensions = [], [], [], []
        for assignment_id, due, exercises in plan:
            code = [e for e in exercises if e[1] != "model"]
            model = [e for e in exercises if e[1] == "model"]
            for uid in user_ids:
                if rng.random() < 0.05:
                    extensions.append((assignment_id, uid, due + timedelta(days=3)))
                for k in range(per_student):
                    is_model = bool(model) and k == per_student - 1
                    graded = model if is_model else code
                    sub_id = hex_id()
                    submitted = due - timedelta(hours=rng.uniform(-60, 200))
                    late = max(0.0, (submitted - due).total_seconds())
                    penalty = min(50.0, 10.0 * -(-late // 86400)) if late > 0 else 0.0
                    job_ids = []
                    failed = rng.random() < 0.02
                    regraded = rng.random() < 0.10
                    for attempt in range(2 if regraded else 1):
                        job_id = hex_id()
                        if failed:
                            jobs.append(
                                (
                                    job_id,
                                    sub_id,
                                    "failed",
                                    "cpu",
                                    "submission",
                                    submitted,
                                    submitted,
                                    3,
                                    None,
                                    None,
                                    None,
                                    None,
                                    None,
                                )
                            )
                            break
                        raw = 0.0
                        for position, (slug, _, points) in enumerate(graded):
                            for t in range(TESTS_PER_EXERCISE):
                                score = points / TESTS_PER_EXERCISE * (rng.random() < 0.8)
                                raw += score
                                results.append(
                                    (
                                        job_id,
                                        position * TESTS_PER_EXERCISE + t,
                                        slug,
                                        f"test {t}",
                                        "passed" if score else "failed",
                                        score,
                                        points / TESTS_PER_EXERCISE,
                                        "hidden",
                                        "",
                                    )
                                )
                        done = submitted + timedelta(minutes=1 + 60 * attempt)
                        jobs.append(
                            (
                                job_id,
                                sub_id,
                                "graded",
                                "cpu",
                                "regrade" if attempt else "submission",
                                done,
                                done,
                                1,
                                round(raw, 6),
                                sum(p for _, _, p in graded),
                                late,
                                penalty,
                                round(raw * (1 - penalty / 100), 6),
                            )
                        )
                        job_ids.append(job_id)
                    submissions.append(
                        (
                            sub_id,
                            assignment_id,
                            uid,
                            "0" * 64,
                            "model.safetensors" if is_model else "hw.ipynb",
                            "safetensors" if is_model else "notebook",
                            1000,
                            submitted,
                            job_ids[-1] if job_ids else None,
                        )
                    )

        with cur.copy(
            "COPY submissions (id, assignment_id, user_id, sha256, filename, "
            "file_kind, size_bytes, submitted_at, current_job_id) FROM STDIN"
        ) as copy:
            for row in submissions:
                copy.write_row(row)
        with cur.copy(
            "COPY grading_jobs (id, submission_id, status, queue, reason, created_at, "
            "finished_at, attempt, raw_score, max_score, late_seconds, "
            "penalty_percent, score) FROM STDIN"
        ) as copy:
            for row in jobs:
                copy.write_row(row)
        with cur.copy(
            "COPY test_results (job_id, position, exercise_slug, name, outcome, "
            "score, max_score, visibility, feedback) FROM STDIN"
        ) as copy:
            for row in results:
                copy.write_row(row)
        with cur.copy("COPY extensions (assignment_id, user_id, due_at) FROM STDIN") as copy:
            for row in extensions:
                copy.write_row(row)
        conn.commit()
    # Steady state, as autovacuum leaves a live database: statistics and visibility map.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    counts.update(
        submissions=len(submissions),
        jobs=len(jobs),
        results=len(results),
        extensions=len(extensions),
    )
    return counts


def time_export(runs: int, fmt: str) -> tuple[list[float], int]:
    from sqlalchemy import select

    from api.services.gradebook import gradebook_csv
    from core.db import get_sessionmaker
    from core.models import Course

    timings, size = [], 0
    for _ in range(runs):
        with get_sessionmaker()() as session:
            started = time.perf_counter()
            course = session.scalar(select(Course).where(Course.slug == "bench"))
            assert course is not None
            text = gradebook_csv(session, course, fmt)
            timings.append(time.perf_counter() - started)
            size = len(text)
    return timings, size


def summary(name: str, timings: list[float], size: int) -> str:
    ms = sorted(t * 1000 for t in timings)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    return (
        f"{name:<12} median {statistics.median(ms):7.1f} ms   min {ms[0]:7.1f}   "
        f"max {ms[-1]:7.1f}   IQR {q[0]:.1f}-{q[2]:.1f}   "
        f"stdev {statistics.pstdev(ms):5.1f} ms   ({len(ms)} runs, {size / 1e6:.2f} MB)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--assignments", type=int, default=7)
    parser.add_argument("--submissions", type=int, default=3, help="per student and assignment")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    import psycopg

    name = f"ag_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    os.environ["AUTOGRADER_DATABASE_URL"] = (
        base.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    )
    try:
        from core.migrate import upgrade

        upgrade()
        started = time.perf_counter()
        counts = populate(f"{base}/{name}", args.students, args.assignments, args.submissions)
        print(
            f"database {name}: "
            + ", ".join(f"{v} {k}" for k, v in counts.items())
            + f" (loaded in {time.perf_counter() - started:.1f} s)"
        )
        time_export(2, "wide")  # warm: imports, connection pool, PostgreSQL's caches
        wide, wide_size = time_export(args.runs, "wide")
        long, long_size = time_export(args.runs, "long")
        print(summary("wide (API)", wide, wide_size))
        print(summary("long", long, long_size))
        target = statistics.median(wide) < 1.0
        print(f"target median < 1 s: {'met' if target else 'MISSED'}")
        return 0 if target else 1
    finally:
        from core.db import get_engine

        get_engine().dispose()
        if not args.keep:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print(f"kept database {name}")


if __name__ == "__main__":
    sys.exit(main())
