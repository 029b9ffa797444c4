"""The notebook as imported tests replay it: reference.py's cells, on either side.

An imported assignment's reference.py is the instructor's notebook code in order, one
cell after each `# %% [setup]` or `# %% [solution]` line. A test sits between two cells
(its `position`: how many cells come before it) and sees the namespace the notebook has
there. Both sides are rebuilt by replaying the cells in the trusted grader:

- reference side (`ReferenceRun`, once per process): every cell runs; the functions the
  solution cells define are wrapped so that each call from the notebook or a test is
  seeded as the sandbox seeds the student's (torch seed 0, the grader's generator left as
  it was), and what they return is recorded (data or object) for the proxies' guard.
- student side (`StudentRun`, once per graded submission and sandbox): setup cells run
  in the grader as written; a solution cell's imports run in the grader and each name
  it defines is taken from the sandbox (`SandboxLink.fetch_name`): the student's value,
  by value or as a proxy. A setup statement that fails there (the student's answer broke
  it) is skipped, and the names it would have bound say why if a test asks for them.
"""

from __future__ import annotations

import ast
import builtins
import random
import re
import signal
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graders.authoring.link import SandboxLink, TestContext
from graders.authoring.names import answer_names, is_import, statement_binds
from graders.authoring.proxies import AnswerError, ProxyLimit, StudentRaised
from graders.dsl import GraderError
from graders.student import Student, StudentError

CELL_LINE = re.compile(r"^# %% \[(setup|solution)\](.*)$")
#: The seed of the grader's generators before each test (both sides alike).
TEST_SEED = 0


@dataclass(frozen=True)
class RefCell:
    kind: str  # setup | solution
    label: str
    source: str
    tree: ast.Module
    #: Names the student writes (a solution cell's bindings other than imports).
    answers: tuple[str, ...] = ()


def read_cells(text: str, where: str = "reference.py") -> list[RefCell]:
    """Split reference.py at its cell lines; text before the first one is a header."""
    cells: list[RefCell] = []
    kind: str | None = None
    label = ""
    lines: list[str] = []

    def close() -> None:
        if kind is None:
            return
        source = "\n".join(lines) + "\n"
        try:
            tree = ast.parse(source, filename=f"<{where} {label}>")
        except SyntaxError as exc:
            raise GraderError(f"{where}: {label} is not valid Python: {exc}") from exc
        answers = answer_names(tree) if kind == "solution" else ()
        cells.append(RefCell(kind, label, source, tree, answers))

    for line in text.splitlines():
        match = CELL_LINE.match(line)
        if match:
            close()
            kind, label, lines = (
                match.group(1),
                (match.group(2).strip() or f"cell {len(cells) + 1}"),
                [],
            )
        else:
            lines.append(line)
    close()
    return cells


def _display(*objects: Any, **kwargs: Any) -> None:
    """IPython's display(), which shows nothing in the grader."""


def namespace_builtins(context: TestContext | None = None) -> dict[str, Any]:
    """A copy of the builtins for one namespace: what a test patches stays in it.

    print() writes into the test's context (OK-format tests compare it) or nowhere.
    """
    table = dict(vars(builtins))

    def captured_print(
        *values: Any,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        if context is not None and file is None:
            context.printed.append(
                (sep if sep is not None else " ").join(str(v) for v in values)
                + (end if end is not None else "\n")
            )

    table["print"] = captured_print
    table["display"] = _display
    table["input"] = lambda *args, **kwargs: ""
    return table


def copy_data(value: Any) -> Any:
    """A copy of data a test might change in place; other objects are shared."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [copy_data(v) for v in value]
    if isinstance(value, dict) and type(value) is dict:
        return {k: copy_data(v) for k, v in value.items()}
    if isinstance(value, set):
        return set(value)
    return value


def is_data(value: Any, depth: int = 0) -> bool:
    """Whether a value is what the protocol carries as data (and sets of it)."""
    if depth > 32:
        return False
    if value is None or isinstance(value, bool | int | float | str | bytes | torch.Tensor):
        return True
    if isinstance(value, np.ndarray | np.generic):
        return value.dtype.kind in "biuf"
    if isinstance(value, list | tuple | set | frozenset):
        return all(is_data(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_data(v, depth + 1) for k, v in value.items())
    return False


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The grader's generators seeded for one test, and put back as they were after."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class OverTime(BaseException):
    """The grader-side code of a test ran past its time (not catchable as an Exception)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Stop the grader's own run of a test after `seconds` (main thread only).

    The test's code is the instructor's, but a loop in it may be driven by the student's
    answers (`for _ in range(answer)`); calls into the sandbox have their own deadlines.
    """
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise OverTime(f"over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_statements(
    cell: RefCell, ns: dict[str, Any], on_error: Callable[[ast.stmt, BaseException], None]
) -> None:
    for stmt in cell.tree.body:
        code = compile(ast.Module(body=[stmt], type_ignores=[]), f"<{cell.label}>", "exec")
        try:
            exec(code, ns)
        except Exception as exc:
            on_error(stmt, exc)


def _tensors(value: Any, found: list[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        found.append(value)
    elif isinstance(value, list | tuple):
        for v in value:
            _tensors(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _tensors(v, found)
    return found


class RefCallable:
    """A solution function as the reference side calls it: seeded like the sandbox."""

    __slots__ = ("_fn", "_name", "_run")

    def __init__(self, fn: Callable[..., Any], name: str, run: ReferenceRun) -> None:
        self._fn = fn
        self._name = name
        self._run = run

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run = self._run
        if run.depth:  # a call from inside the solution's own code: not seeded again
            return self._fn(*args, **kwargs)
        before = [t.detach().clone() for t in _tensors((args, kwargs), [])]
        run.depth += 1
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                result = self._fn(*args, **kwargs)
        finally:
            run.depth -= 1
        after = _tensors((args, kwargs), [])
        if any(
            b.shape != a.shape or not torch.equal(b, a.detach())
            for b, a in zip(before, after, strict=False)
        ):
            run.mutates.add(self._name)
        kind = "data" if is_data(result) else "object"
        if run.kinds.get(self._name) != "object":
            run.kinds[self._name] = kind
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fn, name)

    def __repr__(self) -> str:
        return repr(self._fn)


def _seed_constructor(cls: type, run: ReferenceRun) -> None:
    """A solution class builds its objects from torch seed 0, as the sandbox does."""
    original = cls.__dict__.get("__init__") or getattr(cls, "__init__")  # noqa: B009

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if run.depth:
            original(self, *args, **kwargs)
            return
        run.depth += 1
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                original(self, *args, **kwargs)
        finally:
            run.depth -= 1

    try:
        cls.__init__ = __init__  # type: ignore[misc]
    except (TypeError, AttributeError):
        pass


@dataclass
class ReferenceRun:
    """The reference side of every test of one assignment, computed once per process."""

    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    mutates: set[str] = field(default_factory=set)
    results: dict[int, Any] = field(default_factory=dict)
    depth: int = 0

    def replay(self, cells: list[RefCell], positions: set[int]) -> None:
        ns: dict[str, Any] = {"__name__": "__notebook__", "__builtins__": namespace_builtins()}

        for index, cell in enumerate(cells):
            if index in positions:
                self.snapshots[index] = dict(ns)

            def fail(stmt: ast.stmt, exc: BaseException, cell: RefCell = cell) -> None:
                raise GraderError(
                    f"{cell.label} of the notebook fails when the grader runs it (line "
                    f"{stmt.lineno}): {type(exc).__name__}: {exc}"
                ) from exc

            run_statements(cell, ns, fail)
            for name in cell.answers:
                value = ns.get(name)
                if isinstance(value, type):
                    _seed_constructor(value, self)
                elif isinstance(value, types.FunctionType):
                    ns[name] = RefCallable(value, name, self)
        if len(cells) in positions:
            self.snapshots[len(cells)] = dict(ns)

    def namespace(self, position: int, context: TestContext | None) -> dict[str, Any]:
        ns = {k: copy_data(v) for k, v in self.snapshots[position].items()}
        ns["__builtins__"] = namespace_builtins(context)
        return ns


class StudentRun:
    """The student side for one graded submission, in one sandbox."""

    def __init__(
        self, student: Student, cells: list[RefCell], positions: set[int], kinds: dict[str, str]
    ) -> None:
        self.link = SandboxLink(student, kinds)
        self.snapshots: dict[int, dict[str, Any]] = {}
        #: Names a skipped statement would have bound, and why it was skipped.
        self.missing: dict[str, str] = {}
        self.fatal: StudentError | None = None
        try:
            with seeded(TEST_SEED):  # as the reference side's replay
                self._replay(cells, positions)
        except StudentError as exc:
            self.fatal = exc

    def _replay(self, cells: list[RefCell], positions: set[int]) -> None:
        ns: dict[str, Any] = {"__name__": "__notebook__", "__builtins__": namespace_builtins()}
        for index, cell in enumerate(cells):
            if index in positions:
                self.snapshots[index] = dict(ns)

            def skipped(stmt: ast.stmt, exc: BaseException, cell: RefCell = cell) -> None:
                self._skipped(cell, stmt, exc)

            if cell.kind == "setup":
                run_statements(cell, ns, skipped)
                continue
            imports = RefCell(
                cell.kind,
                cell.label,
                "",
                ast.Module(body=[s for s in cell.tree.body if is_import(s)], type_ignores=[]),
            )
            run_statements(imports, ns, skipped)
            for name in cell.answers:
                try:
                    ns[name] = self.link.fetch_name(name)
                except StudentRaised:
                    ns.pop(name, None)
                    self.missing[name] = "your submission does not define it"
        if len(cells) in positions:
            self.snapshots[len(cells)] = dict(ns)

    def _skipped(self, cell: RefCell, stmt: ast.stmt, exc: BaseException) -> None:
        if isinstance(exc, StudentError) and exc.outcome != "error":
            raise exc  # a timeout or crash: the sandbox is gone
        if isinstance(exc, StudentRaised):
            why = f"your code raised {type(exc).__name__} when {cell.label} called it"
        elif isinstance(exc, ProxyLimit | AnswerError):
            why = exc.message
        else:
            why = f"{cell.label} raised {type(exc).__name__} on your answer"
        for name in statement_binds(stmt):
            self.missing.setdefault(name, why)

    def namespace(self, position: int, context: TestContext) -> dict[str, Any]:
        if self.fatal is not None:
            raise self.fatal
        ns = {k: copy_data(v) for k, v in self.snapshots[position].items()}
        ns["__builtins__"] = namespace_builtins(context)
        return ns


class Program:
    """The cells of one imported assignment's reference.py and the tests that replay them."""

    def __init__(self, reference: types.ModuleType) -> None:
        path = Path(str(reference.__file__))
        self.cells = read_cells(path.read_text(), path.name)
        self.key = f"_autograder_imported_{id(self)}"
        self.tests: list[Any] = []  # ImportedTest, registered by tests.py
        self._reference: ReferenceRun | None = None
        self._run_tests: Callable[[ReferenceRun], None] | None = None

    @property
    def positions(self) -> set[int]:
        return {t.position for t in self.tests}

    def reference_run(self, run_tests: Callable[[ReferenceRun], None]) -> ReferenceRun:
        if self._reference is None:
            run = ReferenceRun()
            with seeded(TEST_SEED):  # the notebook's own random draws, alike on both sides
                run.replay(self.cells, self.positions)
            run_tests(run)
            self._reference = run
        return self._reference

    def student_run(self, student: Student, kinds: dict[str, str]) -> StudentRun:
        run = student.cache.get(self.key)
        sandbox = student.session.ensure()
        if not isinstance(run, StudentRun) or run.link.sandbox is not sandbox:
            run = StudentRun(student, self.cells, self.positions, kinds)
            student.cache[self.key] = run
        return run


def program_of(reference: types.ModuleType) -> Program:
    """The one Program of a reference module (kept on the module itself)."""
    program = getattr(reference, "__autograder_program__", None)
    if not isinstance(program, Program):
        program = Program(reference)
        reference.__dict__["__autograder_program__"] = program
    return program
