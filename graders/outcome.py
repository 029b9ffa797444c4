"""One test's result: the record the engine reports, the worker stores and a partial
regrade carries over. core.models.TestResult is its row (`TestResult.columns_of` and
`TestResult.outcome_of`: the one conversion each way). No imports: the API and the CLI read it
without loading the engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TestOutcome:
    __test__ = False  # not a pytest test class, whatever its name

    exercise: str
    name: str
    outcome: str  # passed | failed | error | timeout | oom | crashed
    score: float
    max_score: float
    visibility: str
    feedback: str
    #: How long the test took (the engine's report; not stored).
    seconds: float = 0.0
