"""What the self-check found: one row per graded submission, and the table of them."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

EPS = 1e-9
#: A buggy variant must lose at least this share of its exercise's points.
WEAK_SHARE = 0.25


@dataclass
class CheckRow:
    assignment: str
    variant: str
    expectation: str
    scores: dict[str, float]
    total: float
    max_score: float
    ok: bool
    problem: str = ""
    #: For a variant: the points it loses on its own exercise, and that exercise's points.
    lost: float | None = None
    exercise_points: float | None = None

    @property
    def weak(self) -> bool:
        return (
            self.lost is not None
            and self.exercise_points is not None
            and self.lost + EPS < WEAK_SHARE * self.exercise_points
        )


@dataclass
class CheckResult:
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def weak(self) -> list[CheckRow]:
        return [r for r in self.rows if r.weak]


def format_table(result: CheckResult) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="course check")
    for name in ("assignment", "submission", "expected", "score", "lost on its exercise", "result"):
        table.add_column(name)
    for r in result.rows:
        lost = ""
        if r.lost is not None and r.exercise_points is not None:
            lost = f"{r.lost:g} of {r.exercise_points:g}" + (" WEAK" if r.weak else "")
        table.add_row(
            r.assignment,
            r.variant,
            r.expectation,
            f"{r.total:g}/{r.max_score:g}",
            lost,
            "ok" if r.ok else f"FAIL: {r.problem}"[:200],
        )
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()
