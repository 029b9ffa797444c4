"""The imported-test kind: a test cell of an nbgrader or Otter notebook, run in the grader.

`ExerciseBuilder.imported(...)` (graders.dsl) registers one. Its code runs in the
trusted grader, on a copy of the notebook's namespace at the test's place
(graders.authoring.program), where the student's names are proxies
(graders.authoring.proxies). Three styles:

- "assert" (nbgrader, Otter exception-style cells without test functions): the cell
  passes if it runs to the end. All or nothing, as nbgrader scores a test cell, unless
  `per_assert`: then each top-level `assert` is worth an equal share.
- "ok" (Otter's OK format): the value of the cell's last expression and what the cell
  prints, computed against the student, must equal the same computed against the
  reference (tensors and floats within rtol=1e-4, atol=1e-5).
- "exception" (Otter's exception-based tests): the cell's `test_*` functions are called
  with the namespace's values of their parameters (`env` is the namespace itself).

Every test is first run against the reference, once per process: a test that fails on
the solution is the course's fault (GraderError), never a student's zero.
"""

from __future__ import annotations

import ast
import inspect
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from graders.authoring.link import TestContext
from graders.authoring.program import (
    TEST_SEED,
    OverTime,
    Program,
    ReferenceRun,
    StudentRun,
    is_data,
    program_of,
    seeded,
    time_limit,
)
from graders.authoring.proxies import AttrProxy, HandleProxy, OpaqueAnswer, StudentRaised
from graders.compare import Verdict, compare, describe_value
from graders.dsl import ExerciseBuilder, Fail, GraderError, TestCase, Visibility
from graders.student import Student, StudentError
from protocol.text import clean

STYLES = ("assert", "ok", "exception")
MESSAGE_CHARS = 300
#: Seconds the grader's own run of one test may take (besides the sandbox's answers).
GRADER_SECONDS = 60.0


@dataclass
class ImportedTest:
    program: Program
    exercise: str
    name: str
    points: float
    source: str
    position: int
    style: str
    visibility: str
    hidden_lines: frozenset[int]
    per_assert: bool
    failure_message: str
    index: int
    tree: ast.Module

    @property
    def filename(self) -> str:
        return f"<imported test {self.exercise}#{self.index}>"

    def shows(self, line: int | None) -> bool:
        """Whether feedback may quote this line of the test (students can read it)."""
        if line is None:
            return False
        if self.visibility == "hidden" and not self.hidden_lines:
            return False
        return line not in self.hidden_lines

    def line_text(self, line: int) -> str:
        lines = self.source.splitlines()
        return lines[line - 1].strip() if 0 < line <= len(lines) else ""


ImportedTest.__test__ = False  # type: ignore[attr-defined]


@dataclass
class Outcome:
    error: BaseException | None = None
    line: int | None = None
    checks: int = 0
    failed: int = 0
    value: Any = None
    printed: str = ""


@dataclass(frozen=True)
class RefResult:
    ok: bool
    problem: str = ""
    value: Any = None
    printed: str = ""


# -- running a test's code -------------------------------------------------------------------
def _exec(test: ImportedTest, body: list[ast.stmt], ns: dict[str, Any]) -> None:
    exec(compile(ast.Module(body=body, type_ignores=[]), test.filename, "exec"), ns)


def _line(test: ImportedTest, exc: BaseException) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == test.filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _per_assert(test: ImportedTest, ns: dict[str, Any], out: Outcome) -> None:
    body = test.tree.body
    for position, stmt in enumerate(body):
        is_check = isinstance(stmt, ast.Assert)
        out.checks += is_check
        try:
            _exec(test, [stmt], ns)
        except StudentError:
            raise
        except Exception as exc:
            if out.error is None:
                out.error, out.line = exc, _line(test, exc)
            if is_check:
                out.failed += 1
                continue
            rest = sum(isinstance(s, ast.Assert) for s in body[position + 1 :])
            out.checks += rest
            out.failed += rest
            return


def _exception_style(test: ImportedTest, ns: dict[str, Any]) -> None:
    body = test.tree.body
    functions = [
        s.name for s in body if isinstance(s, ast.FunctionDef) and s.name.startswith("test")
    ]
    kept = [
        s
        for s in body
        if not (
            isinstance(s, ast.Expr)
            and isinstance(s.value, ast.Call)
            and isinstance(s.value.func, ast.Name)
            and s.value.func.id in functions
        )
    ]
    _exec(test, kept, ns)
    for name in functions:
        function = ns[name]
        params = inspect.signature(function).parameters
        function(**{p: ns if p == "env" else ns.get(p) for p in params})


def execute(test: ImportedTest, ns: dict[str, Any], context: TestContext) -> Outcome:
    out = Outcome()
    body = test.tree.body
    try:
        if test.style == "ok":
            last = body[-1] if body and isinstance(body[-1], ast.Expr) else None
            _exec(test, body[:-1] if last is not None else body, ns)
            if last is not None:
                code = compile(ast.Expression(last.value), test.filename, "eval")
                out.value = eval(code, ns)
        elif test.style == "exception":
            _exception_style(test, ns)
        elif test.per_assert and any(isinstance(s, ast.Assert) for s in body):
            _per_assert(test, ns, out)
        else:
            _exec(test, body, ns)
    except (Exception, SystemExit, OverTime) as exc:
        if out.error is None:
            out.error, out.line = exc, _line(test, exc)
    out.printed = "".join(context.printed)
    return out


# -- verdicts ----------------------------------------------------------------------------------
def describe_failure(
    test: ImportedTest,
    exc: BaseException,
    line: int | None,
    missing: dict[str, str] | None = None,
    instructor: bool = False,
) -> str:
    if isinstance(exc, Fail):
        return exc.message
    shown = instructor or test.shows(line)
    code = test.line_text(line) if line is not None and shown else ""
    where = f"`{code}` (line {line})" if code else "a hidden check"
    if isinstance(exc, NameError) and missing and getattr(exc, "name", None) in missing:
        return f"`{exc.name}` is not defined: {missing[str(exc.name)]}"
    text = clean(exc, MESSAGE_CHARS) if shown else ""
    if isinstance(exc, AssertionError) and not isinstance(exc, StudentRaised):
        return f"{where} failed" + (f": {text}" if text else "")
    return f"{where} raised {type(exc).__name__}" + (f": {text}" if text else "")


def _opaque(value: Any) -> bool:
    return isinstance(value, HandleProxy | OpaqueAnswer | AttrProxy)


def same_value(got: Any, want: Any, path: str = "the value") -> Verdict:
    """An OK-format test's value against the solution's (tolerant for tensors and floats)."""
    if isinstance(got, AttrProxy):
        got = got.resolve()
    if _opaque(got):
        return Verdict(
            False,
            f"{path} is an object that stays in the sandbox; the solution "
            f"gives {describe_value(want)}",
        )
    if isinstance(want, np.generic):
        want = want.item()
    if isinstance(want, torch.Size):
        want = tuple(want)
    if isinstance(got, torch.Size):
        got = tuple(got)
    if isinstance(want, set | frozenset):
        ok = isinstance(got, set | frozenset) and set(got) == set(want)
        return Verdict(
            ok, "" if ok else f"{path} is not the expected set", f"expected {want!r}, got {got!r}"
        )
    if isinstance(want, str | bytes):
        ok = type(got) is type(want) and got == want
        return Verdict(ok, "" if ok else f"{path} is wrong", f"expected {want!r}, got {got!r}")
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return Verdict(
                False,
                f"{path} should be a dict with the solution's {len(want)} keys",
                f"expected keys {sorted(want)}",
            )
        for key in want:
            verdict = same_value(got[key], want[key], f"{path}[{key!r}]")
            if not verdict.passed:
                return verdict
        return Verdict(True)
    if isinstance(want, list | tuple):
        if not isinstance(got, list | tuple) or len(got) != len(want):
            return Verdict(False, f"{path} should be a {type(want).__name__} of {len(want)} values")
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            verdict = same_value(g, w, f"element {i} of {path}")
            if not verdict.passed:
                return verdict
        return Verdict(True)
    if isinstance(want, np.ndarray):
        if not isinstance(got, np.ndarray) or got.shape != want.shape or got.dtype != want.dtype:
            return Verdict(False, f"{path} should be {describe_value(want)}")
        ok = bool(
            np.allclose(got, want, rtol=1e-4, atol=1e-5, equal_nan=True)
            if want.dtype.kind == "f"
            else np.array_equal(got, want)
        )
        return Verdict(ok, "" if ok else f"{path} has wrong values")
    try:
        return compare(got, want, path=path)
    except TypeError:
        ok = type(got) is type(want) and got == want
        return Verdict(bool(ok), "" if ok else f"{path} is wrong")


def _ok_verdict(out: Outcome, ref: RefResult) -> Verdict:
    verdict = same_value(out.value, ref.value, "the value of the test's last line")
    if verdict.passed and out.printed != ref.printed:
        verdict = Verdict(
            False,
            "the test prints something other than what the solution prints",
            f"expected output:\n{ref.printed}\nyour output:\n{out.printed}",
        )
    if not verdict.passed and not verdict.detail:
        verdict.detail = f"expected {ref.value!r}\ngot      {out.value!r}"
    return verdict


def student_verdict(
    test: ImportedTest, out: Outcome, ref: RefResult, context: TestContext, run: StudentRun
) -> Verdict:
    if context.fatal is not None:
        raise context.fatal
    error = out.error
    if isinstance(error, GraderError):
        raise error
    if isinstance(error, OverTime):
        raise StudentError("timeout", f"the test ran {error} in the grader on your answers")
    per_check = test.per_assert and out.checks > 0
    if not per_check:
        if isinstance(error, StudentRaised):
            raise error.student_error
        if isinstance(error, StudentError):
            raise error
    if error is None and context.answer_error is not None:
        verdict = Verdict(False, context.answer_error.message)
    elif error is None:
        verdict = _ok_verdict(out, ref) if test.style == "ok" else Verdict(True)
    else:
        verdict = Verdict(False, describe_failure(test, error, out.line, run.missing))
    if per_check:
        earned = (out.checks - out.failed) / out.checks
        verdict = Verdict(out.failed == 0, verdict.message, verdict.detail, fraction=earned)
    if not verdict.passed and test.failure_message:
        verdict.message = f"{verdict.message} ({test.failure_message})".strip()
    return verdict


def run_reference_tests(program: Program, run: ReferenceRun) -> None:
    """Every test of the program against the reference; what fails is the course's fault."""
    for test in program.tests:
        context = TestContext()
        ns = run.namespace(test.position, context)
        with seeded(TEST_SEED):
            out = execute(test, ns, context)
        if out.error is not None:
            problem = describe_failure(test, out.error, out.line, instructor=True)
            run.results[test.index] = RefResult(False, problem)
        elif out.failed:
            run.results[test.index] = RefResult(False, f"{out.failed} of its asserts fail")
        elif test.style == "ok" and not is_data(out.value):
            run.results[test.index] = RefResult(
                False,
                (
                    f"its last expression gives a {type(out.value).__qualname__}; an OK-format "
                    "test can compare only data (tensors, numpy arrays, numbers, strings, lists, "
                    "tuples, dicts and sets of them)"
                ),
            )
        else:
            run.results[test.index] = RefResult(True, value=out.value, printed=out.printed)


def reference_run(program: Program) -> ReferenceRun:
    return program.reference_run(lambda run: run_reference_tests(program, run))


def reference_problems(program: Program) -> list[str]:
    """Why the solution itself does not pass this program's tests (empty: it does)."""
    try:
        run = reference_run(program)
    except GraderError as exc:
        return [str(exc)]
    problems = [
        f"{t.exercise}: test {t.name!r} fails on the solution: {run.results[t.index].problem}"
        for t in program.tests
        if not run.results[t.index].ok
    ]
    return problems


def mutating_answers(program: Program) -> list[str]:
    return sorted(reference_run(program).mutates)


def imported_test(
    builder: ExerciseBuilder,
    name: str,
    points: float,
    source: str,
    position: int,
    style: str = "assert",
    visibility: Visibility = "hidden",
    hidden_lines: tuple[int, ...] = (),
    per_assert: bool = False,
    failure_message: str = "",
    timeout: float | None = None,
) -> TestCase:
    if style not in STYLES:
        raise GraderError(f"imported test {name!r}: style {style!r} is not one of {STYLES}")
    program = program_of(builder.reference)
    if not 0 <= position <= len(program.cells):
        raise GraderError(
            f"imported test {name!r}: position {position} is outside "
            f"reference.py's {len(program.cells)} cells"
        )
    filename = f"<imported test {builder.spec.slug}#{len(program.tests)}>"
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise GraderError(f"imported test {name!r} is not valid Python: {exc}") from exc
    test = ImportedTest(
        program,
        builder.spec.slug,
        name,
        points,
        source,
        position,
        style,
        visibility,
        frozenset(hidden_lines),
        per_assert,
        failure_message,
        len(program.tests),
        tree,
    )
    program.tests.append(test)

    def run(student: Student) -> Verdict:
        ref_run = reference_run(program)
        ref = ref_run.results[test.index]
        if not ref.ok:
            raise GraderError(
                f"imported test {name!r} of {test.exercise} fails on the solution: {ref.problem}"
            )
        seconds = GRADER_SECONDS
        if student.session.deadline is not None:
            seconds = min(seconds, max(student.session.deadline - time.monotonic(), 0.001))
        try:
            with time_limit(seconds * 2):
                student_run = program.student_run(student, ref_run.kinds)
        except OverTime:
            raise StudentError(
                "timeout", "the notebook's cells ran too long in the grader on your answers"
            ) from None
        context = student_run.link.begin()
        try:
            ns = student_run.namespace(test.position, context)
            try:
                with seeded(TEST_SEED), time_limit(seconds):
                    out = execute(test, ns, context)
            except OverTime as exc:  # the timer fired just as the test ended
                out = Outcome(error=exc)
        finally:
            student_run.link.end()
        return student_verdict(test, out, ref, context, student_run)

    description = source if visibility == "visible" else ""
    return TestCase(name, points, run, visibility, timeout, description)
