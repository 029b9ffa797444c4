"""The trusted grader's view of a submission running in a sandbox.

`SubmissionSession` owns the sandbox's life: it starts one, runs the submission's
cells one request each (so a hang or crash is pinned on its cell, which is then
skipped), and whenever a request ends badly (timeout, crash, a reply that breaks the
protocol, an exception in the grader) it closes that sandbox before anything else
happens; the next use starts a fresh one. `Student` is what a hidden test sees: call
a function, build an object, load a model. Failures of the student's code come out as
`StudentError` with the outcome they cost.

Output policy: what the submission prints while its cells are first loaded is kept
for the student; what it prints while a test calls it is never kept, since it may
show the test's inputs.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from graders.intake import CodeCell
from graders.sandbox_api import Sandbox, SandboxCrashed, SandboxFactory, SandboxTimeout
from protocol.codec import Handle
from protocol.messages import Failure, Op, ProtocolViolation, Reply, parse_reply, request

OUTPUT_KEEP = 8000
MEMORY_ERRORS = frozenset({"MemoryError", "OutOfMemoryError"})


class StudentError(Exception):
    """The student's code failed; `outcome` is error, timeout, oom or crashed."""

    def __init__(self, outcome: str, message: str, failure: Failure | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        #: The exception the student's code raised, when it raised one.
        self.failure = failure


@dataclass(frozen=True)
class HelperSpec:
    """The recipe of an object built inside the sandbox from the assignment's public
    helpers (a network, a field, a dataset): the student's code gets a handle to it.

    `target` is "module:Class"; `state` is a state dict the grader supplies.
    """

    target: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    eval: bool = True
    seed: int | None = 0


#: The former name, kept so that the tests.py of existing courses still load.
ModelSpec = HelperSpec


@dataclass
class CellReport:
    index: int
    status: str  # ok | syntax_error | error | timeout | crashed
    message: str


class SubmissionSession:
    def __init__(
        self,
        factory: SandboxFactory,
        cells: list[CodeCell],
        cell_timeout: float = 30.0,
        deadline: float | None = None,
    ) -> None:
        self.factory = factory
        self.cells = cells
        self.cell_timeout = cell_timeout
        self.deadline = deadline
        self.sandbox: Sandbox | None = None
        self.skipped: dict[int, CellReport] = {}
        self.cell_reports: list[CellReport] = []
        self.output: list[str] = []
        self.output_size = 0
        self.restarts = 0
        self.isolation = ""
        self.load_seconds = 0.0
        self._loaded_once = False
        self._seq = itertools.count(1)

    # -- lifecycle ----------------------------------------------------------
    def ensure(self) -> Sandbox:
        if self.sandbox is not None:
            return self.sandbox
        first_load = not self._loaded_once
        started = time.perf_counter()
        while True:
            self._timeout(self.cell_timeout)  # no new sandbox once the job's time is up
            self.sandbox = self.factory()
            self.isolation = self.sandbox.isolation
            try:
                reports = self._load_cells(first_load)
            except BaseException:
                self.discard()
                raise
            if reports is not None:
                break
            self.restarts += 1
        if first_load:
            self._loaded_once = True
            self.cell_reports = sorted([*reports, *self.skipped.values()], key=lambda r: r.index)
            self.load_seconds = time.perf_counter() - started
        return self.sandbox

    def _load_cells(self, first_load: bool) -> list[CellReport] | None:
        """Run every cell not yet skipped; None means the sandbox died and must restart."""
        reports = []
        for cell in self.cells:
            if cell.index in self.skipped:
                continue
            try:
                reply = self._exchange(
                    Op.EXEC,
                    self._timeout(self.cell_timeout),
                    index=cell.index,
                    source=cell.source,
                )
            except SandboxTimeout:
                self._skip(
                    cell,
                    "timeout",
                    f"cell {cell.index} ran longer than {self.cell_timeout:g} s and was skipped",
                )
                return None
            except SandboxCrashed as exc:
                cause = "broke the grader's protocol" if exc.protocol else "crashed the sandbox"
                self._skip(cell, "crashed", f"cell {cell.index} {cause} ({exc}); skipped")
                return None
            if first_load:
                self._keep_output(reply.output)
            if reply.failure is not None or reply.cell is None:
                failure = reply.failure
                message = failure.traceback or failure.message if failure else ""
                reports.append(CellReport(cell.index, "error", message))
                continue
            reports.append(CellReport(cell.index, reply.cell.status, reply.cell.message))
        return reports

    def _skip(self, cell: CodeCell, status: str, message: str) -> None:
        self.skipped[cell.index] = CellReport(cell.index, status, message)
        self.discard()

    def _timeout(self, wanted: float) -> float:
        if self.deadline is None:
            return wanted
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StudentError("timeout", "the submission used up the whole time of its job")
        return min(wanted, left)

    def _keep_output(self, text: str) -> None:
        if text and self.output_size < OUTPUT_KEEP:
            piece = text[: OUTPUT_KEEP - self.output_size]
            self.output.append(piece)
            self.output_size += len(piece)

    def discard(self) -> None:
        """Kill the current sandbox (its whole process tree); the next use starts anew."""
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is not None:
            sandbox.close()

    close = discard

    # -- requests -------------------------------------------------------------
    def _exchange(self, op: Op, timeout: float, **fields: Any) -> Reply:
        """One request to the current sandbox and its validated reply.

        Any way out other than a valid reply closes the sandbox first.
        """
        sandbox = self.sandbox
        assert sandbox is not None
        seq = next(self._seq)
        try:
            raw = sandbox.request(request(op, seq, **fields), timeout=timeout)
            return parse_reply(op, seq, raw)
        except ProtocolViolation as exc:
            self.discard()
            raise SandboxCrashed(str(exc), protocol=True) from exc
        except BaseException:
            self.discard()
            raise

    def request(self, op: Op, timeout: float, **fields: Any) -> Reply:
        self.ensure()
        try:
            reply = self._exchange(op, self._timeout(timeout), **fields)
        except SandboxTimeout as exc:
            raise StudentError("timeout", f"no answer within {timeout:g} s; stopped") from exc
        except SandboxCrashed as exc:
            if exc.oom:
                raise StudentError("oom", f"ran out of memory ({exc})") from exc
            if exc.protocol:
                raise StudentError(
                    "crashed",
                    "the submission wrote to the grader's channel "
                    f"itself and its sandbox was stopped: {exc}",
                ) from exc
            raise StudentError("crashed", f"the sandbox died: {exc}") from exc
        if reply.failure is not None:
            failure = reply.failure
            text = failure.traceback or f"{failure.type}: {failure.message}"
            outcome = "oom" if failure.type in MEMORY_ERRORS else "error"
            raise StudentError(outcome, text, failure)
        return reply

    def defined_names(self) -> set[str]:
        return set(self.request(Op.DEFINED, timeout=self.cell_timeout).names)


class Student:
    """What a hidden test may do with the submission."""

    def __init__(
        self,
        session: SubmissionSession,
        call_timeout: float = 10.0,
        model_path: str | None = None,
        model_format: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.session = session
        self.call_timeout = call_timeout
        self.last_mutated: list[int] = []
        #: The submitted model file inside the sandbox, for model exercises.
        self.model_path = model_path
        self.model_format = model_format
        #: The assignment's options (assignment.toml), for its tests.
        self.options = options or {}
        #: Values a test computes once per graded submission (model_exercises.cached).
        self.cache: dict[str, Any] = {}

    def _prepare(self, value: Any) -> Any:
        if isinstance(value, HelperSpec):
            return self.build(value)
        if isinstance(value, list):
            return [self._prepare(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._prepare(v) for v in value)
        if isinstance(value, dict):
            return {k: self._prepare(v) for k, v in value.items()}
        return value

    def call(
        self,
        target: str | Handle,
        *args: Any,
        method: str | None = None,
        seed: int | None = 0,
        timeout: float | None = None,
        keep: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Call a submission's function (or a method of a sandbox object); return its value.

        With keep=True the value stays in the sandbox and a Handle comes back.
        """
        reply = self.session.request(
            Op.CALL,
            timeout or self.call_timeout,
            target=target,
            method=method,
            args=self._prepare(list(args)),
            kwargs=self._prepare(kwargs),
            seed=seed,
            keep=keep,
        )
        self.last_mutated = list(reply.mutated)
        if keep and not isinstance(reply.value, Handle):
            raise StudentError("crashed", "the sandbox did not return an object handle")
        return reply.value

    def construct(
        self,
        name: str,
        *args: Any,
        seed: int | None = 0,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Handle:
        """Instantiate a class the submission defines (e.g. DeepSet(3, 16, 2))."""
        reply = self.session.request(
            Op.CONSTRUCT,
            timeout or self.call_timeout,
            source="student",
            name=name,
            args=self._prepare(list(args)),
            kwargs=self._prepare(kwargs),
            seed=seed,
        )
        return _handle(reply)

    def build(self, spec: HelperSpec) -> Handle:
        """Build a public helper object (a SmallCNN with given weights) in the sandbox."""
        reply = self.session.request(
            Op.CONSTRUCT,
            self.call_timeout,
            source="public",
            name=spec.target,
            args=list(spec.args),
            kwargs=spec.kwargs,
            state=spec.state,
            eval=spec.eval,
            seed=spec.seed,
        )
        return _handle(reply)

    def load_model(
        self,
        path: str,
        file_format: str,
        architecture: str | None = None,
        kwargs: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Handle:
        reply = self.session.request(
            Op.LOAD_MODEL,
            timeout or self.call_timeout,
            path=path,
            format=file_format,
            architecture=architecture,
            kwargs=kwargs or {},
        )
        return _handle(reply)


def _handle(reply: Reply) -> Handle:
    if not isinstance(reply.value, Handle):
        raise StudentError("crashed", "the sandbox did not return an object handle")
    return reply.value
