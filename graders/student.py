"""The trusted grader's view of a submission running in a sandbox.

`SubmissionSession` owns the sandbox: it starts one, runs the submission's cells one
request each (so a hang or crash is pinned on its cell, which is then skipped), and
after a timeout or crash starts a fresh sandbox on the next use. `Student` is what a
hidden test sees: call a function, build an object, load a model. Failures of the
student's code come out as `StudentError` with the outcome they cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from graders import wire
from graders.intake import Cell
from graders.sandbox_api import Sandbox, SandboxCrashed, SandboxFactory, SandboxTimeout

OUTPUT_KEEP = 8000


class StudentError(Exception):
    """The student's code failed; `outcome` is error, timeout, oom or crashed."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message


@dataclass(frozen=True)
class ModelSpec:
    """An object built inside the sandbox from the assignment's public helpers.

    `target` is "module:Class"; `state` is a state dict the grader supplies.
    """

    target: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    eval: bool = True
    seed: int | None = 0


@dataclass
class CellReport:
    index: int
    status: str  # ok | syntax_error | error | timeout | crashed
    message: str


class SubmissionSession:
    def __init__(
        self,
        factory: SandboxFactory,
        cells: list[Cell],
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

    # -- lifecycle ----------------------------------------------------------
    def ensure(self) -> Sandbox:
        if self.sandbox is not None:
            return self.sandbox
        first_load = not self.cell_reports
        started = time.perf_counter()
        while True:
            self.sandbox = self.factory()
            self.isolation = self.sandbox.isolation
            reports = self._load_cells(self.sandbox)
            if reports is not None:
                break
            self.restarts += 1
        if first_load:
            self.cell_reports = sorted(
                [*reports, *self.skipped.values()], key=lambda r: r.index
            )
            self.load_seconds = time.perf_counter() - started
        return self.sandbox

    def _load_cells(self, sandbox: Sandbox) -> list[CellReport] | None:
        """Run every cell not yet skipped; None means the sandbox died and must restart."""
        reports = []
        for cell in self.cells:
            if cell.index in self.skipped:
                continue
            try:
                reply = sandbox.request(
                    {"op": "exec", "index": cell.index, "source": cell.source},
                    timeout=self._timeout(self.cell_timeout),
                )
            except SandboxTimeout:
                self.skipped[cell.index] = CellReport(
                    cell.index,
                    "timeout",
                    f"cell {cell.index} ran longer than {self.cell_timeout:g} s and was skipped",
                )
                self.sandbox = None
                return None
            except SandboxCrashed as exc:
                self.skipped[cell.index] = CellReport(
                    cell.index, "crashed", f"cell {cell.index} crashed the sandbox ({exc}); skipped"
                )
                self.sandbox = None
                return None
            self._keep_output(reply)
            reports.append(
                CellReport(cell.index, str(reply.get("status")), str(reply.get("message", "")))
            )
        return reports

    def _timeout(self, wanted: float) -> float:
        if self.deadline is None:
            return wanted
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StudentError("timeout", "the submission used up the whole time of its job")
        return min(wanted, left)

    def _keep_output(self, reply: dict[str, Any]) -> None:
        text = reply.get("output")
        if isinstance(text, str) and text and self.output_size < OUTPUT_KEEP:
            piece = text[: OUTPUT_KEEP - self.output_size]
            self.output.append(piece)
            self.output_size += len(piece)

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None

    # -- requests -------------------------------------------------------------
    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        sandbox = self.ensure()
        try:
            reply = sandbox.request(message, timeout=self._timeout(timeout))
        except SandboxTimeout as exc:
            self.sandbox = None
            raise StudentError("timeout", f"no answer within {timeout:g} s; stopped") from exc
        except SandboxCrashed as exc:
            self.sandbox = None
            if exc.oom:
                raise StudentError("oom", f"ran out of memory ({exc})") from exc
            raise StudentError("crashed", f"the sandbox died: {exc}") from exc
        self._keep_output(reply)
        if not reply.get("ok"):
            error = reply.get("error") or {}
            kind = str(error.get("type", "Error"))
            text = str(error.get("traceback") or f"{kind}: {error.get('message', '')}")
            outcome = "oom" if kind in ("MemoryError", "OutOfMemoryError") else "error"
            raise StudentError(outcome, text)
        return reply

    def defined_names(self) -> set[str]:
        reply = self.request({"op": "defined"}, timeout=self.cell_timeout)
        return set(reply.get("names", []))


class Student:
    """What a hidden test may do with the submission."""

    def __init__(self, session: SubmissionSession, call_timeout: float = 10.0) -> None:
        self.session = session
        self.call_timeout = call_timeout
        self.last_mutated: list[int] = []

    def _prepare(self, value: Any) -> Any:
        if isinstance(value, ModelSpec):
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
        target: str | wire.Handle,
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
            {
                "op": "call",
                "target": target,
                "method": method,
                "args": self._prepare(list(args)),
                "kwargs": self._prepare(kwargs),
                "seed": seed,
                "keep": keep,
            },
            timeout=timeout or self.call_timeout,
        )
        self.last_mutated = list(reply.get("mutated") or [])
        return reply.get("value")

    def construct(
        self, name: str, *args: Any, seed: int | None = 0, timeout: float | None = None,
        **kwargs: Any,
    ) -> wire.Handle:
        """Instantiate a class the submission defines (e.g. DeepSet(3, 16, 2))."""
        reply = self.session.request(
            {"op": "construct", "source": "student", "name": name,
             "args": self._prepare(list(args)), "kwargs": self._prepare(kwargs), "seed": seed},
            timeout=timeout or self.call_timeout,
        )
        return _handle(reply)

    def build(self, spec: ModelSpec) -> wire.Handle:
        """Build a public helper object (a SmallCNN with given weights) in the sandbox."""
        reply = self.session.request(
            {"op": "construct", "source": "public", "name": spec.target,
             "args": list(spec.args), "kwargs": spec.kwargs, "state": spec.state,
             "eval": spec.eval, "seed": spec.seed},
            timeout=self.call_timeout,
        )
        return _handle(reply)

    def load_model(
        self, path: str, file_format: str, architecture: str | None = None,
        kwargs: dict[str, Any] | None = None, timeout: float | None = None,
    ) -> wire.Handle:
        reply = self.session.request(
            {"op": "load_model", "path": path, "format": file_format,
             "architecture": architecture, "kwargs": kwargs or {}},
            timeout=timeout or self.call_timeout,
        )
        return _handle(reply)


def _handle(reply: dict[str, Any]) -> wire.Handle:
    value = reply.get("value")
    if not isinstance(value, wire.Handle):
        raise StudentError("error", "the sandbox did not return an object handle")
    return value
