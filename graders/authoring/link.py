"""The sandbox as the proxies of one graded submission reach it (graders.authoring.proxies).

Only existing operations are used: the builtins `getattr`, `__import__`, `list` and
`isinstance` of the submission's own namespace (`__builtins__`) are fetched as handles
once per sandbox; `getattr(<module submission>, name)` reads a name, and
`getattr(0, <absent attribute>, handle)` gives the object behind a handle by value.
Every argument crosses as data (`to_wire`), or is refused with a sentence (ProxyLimit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from graders.authoring.proxies import (
    AnswerError,
    AttrProxy,
    HandleProxy,
    OpaqueAnswer,
    ProxyLimit,
    raised,
)
from graders.student import Student, StudentError
from protocol.codec import Handle, Unsupported
from protocol.messages import Op

MODULE = "submission"
ABSENT_ATTRIBUTE = "_autograder_absent_attribute_"
SET_TYPES = {"builtins.set": set, "builtins.frozenset": frozenset}
SENDABLE = (
    "tensors, numpy arrays, numbers, strings, bytes, None and lists, tuples and "
    "str-keyed dicts of them, or objects the student's own code made"
)


@dataclass
class TestContext:
    """What one test run collects: its prints and what went wrong in the sandbox."""

    printed: list[str] = field(default_factory=list)
    #: A timeout, crash or out-of-memory: the test ends with it even if the code caught it.
    fatal: StudentError | None = None
    #: An answer used as it cannot be: the test fails even if the code caught it.
    answer_error: AnswerError | None = None
    handles: list[Handle] = field(default_factory=list)


TestContext.__test__ = False  # type: ignore[attr-defined]


class SandboxLink:
    """One sandbox, as the proxies of one graded submission reach it."""

    def __init__(self, student: Student, kinds: Mapping[str, str]) -> None:
        self.student = student
        self.session = student.session
        self.sandbox = self.session.ensure()
        #: What each answer function returned on the solution: "data" or "object".
        self.kinds = kinds
        self.context: TestContext | None = None
        self._builtins: dict[str, Handle] = {}
        self._module: Handle | None = None
        self._names: dict[str, Handle] = {}

    @property
    def alive(self) -> bool:
        return self.session.sandbox is self.sandbox

    # -- test runs -----------------------------------------------------------------
    def begin(self) -> TestContext:
        self.context = TestContext()
        return self.context

    def end(self) -> None:
        context, self.context = self.context, None
        if context is not None and context.handles and self.alive:
            try:
                self.session.request(Op.RELEASE, self.student.call_timeout, handles=context.handles)
            except StudentError:
                pass

    def fatal(self, exc: StudentError) -> StudentError:
        if self.context is not None and self.context.fatal is None:
            self.context.fatal = exc
        return exc

    def answer(self, exc: AnswerError) -> AnswerError:
        if self.context is not None and self.context.answer_error is None:
            self.context.answer_error = exc
        return exc

    # -- requests ------------------------------------------------------------------
    def request(
        self,
        target: str | Handle,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        method: str | None = None,
        keep: bool = True,
        seed: int | None = None,
        what: str = "",
    ) -> Any:
        if not self.alive:
            raise self.fatal(StudentError("crashed", "the sandbox was restarted during this test"))
        what = what or (target if isinstance(target, str) else "the student's object")
        wire_args = [self.to_wire(a, what) for a in args]
        wire_kwargs = {k: self.to_wire(v, what) for k, v in (kwargs or {}).items()}
        try:
            reply = self.session.request(
                Op.CALL,
                self.student.call_timeout,
                target=target,
                method=method,
                args=wire_args,
                kwargs=wire_kwargs,
                seed=seed,
                keep=keep,
            )
        except StudentError as exc:
            if exc.outcome == "error" and exc.failure is not None:
                raise raised(exc) from None
            raise self.fatal(exc) from None
        value = reply.value
        if keep:
            if not isinstance(value, Handle):
                raise self.fatal(StudentError("crashed", "the sandbox sent no object handle"))
            if self.context is not None:
                self.context.handles.append(value)
        return value

    def _permanent(
        self, target: str | Handle, args: list[Any], method: str | None = None
    ) -> Handle:
        saved, self.context = self.context, None  # not released with the test's handles
        try:
            handle: Handle = self.request(target, args, method=method, keep=True)
        finally:
            self.context = saved
        return handle

    def builtin(self, name: str) -> Handle:
        if name not in self._builtins:
            self._builtins[name] = self._permanent("__builtins__", [name], "__getitem__")
        return self._builtins[name]

    def module(self) -> Handle:
        if self._module is None:
            self._module = self._permanent(self.builtin("__import__"), [MODULE])
        return self._module

    def name_handle(self, name: str) -> Handle:
        if name not in self._names:
            self._names[name] = self._permanent(self.builtin("getattr"), [self.module(), name])
        return self._names[name]

    def fetch_name(self, name: str) -> Any:
        """The value of a name of the submission: data by value, else a proxy calling it."""
        value = self.materialize(self.name_handle(name), name)
        if isinstance(value, HandleProxy):
            return HandleProxy(self, name, value.type_name, name)
        return value

    # -- values --------------------------------------------------------------------
    def materialize(self, handle: Handle, who: str) -> Any:
        value = self.request(self.builtin("getattr"), [0, ABSENT_ATTRIBUTE, handle], keep=False)
        if isinstance(value, Unsupported):
            kind = SET_TYPES.get(value.type_name)
            if kind is not None:
                items = self.sanitize(self.request(self.builtin("list"), [handle], keep=False), who)
                try:
                    return kind(items)
                except TypeError:
                    return OpaqueAnswer(self, handle, value.type_name, who)
            return HandleProxy(self, handle, value.type_name, who)
        return self.sanitize(value, who)

    def result(self, handle: Handle, who: str, function: str | None = None) -> Any:
        """A call's result; an object where the solution's function gives data is opaque."""
        value = self.materialize(handle, who)
        if (
            isinstance(value, HandleProxy)
            and function is not None
            and self.kinds.get(function) == "data"
        ):
            return OpaqueAnswer(self, handle, value.type_name, who)
        return value

    def sanitize(self, value: Any, who: str) -> Any:
        if isinstance(value, Unsupported):
            return OpaqueAnswer(self, None, value.type_name, who)
        if isinstance(value, Handle):  # only the student's own code could have made one
            return OpaqueAnswer(self, None, "a forged handle", who)
        if isinstance(value, list):
            return [self.sanitize(v, who) for v in value]
        if isinstance(value, tuple):
            return tuple(self.sanitize(v, who) for v in value)
        if isinstance(value, dict):
            return {k: self.sanitize(v, who) for k, v in value.items()}
        return value

    def to_wire(self, value: Any, what: str) -> Any:
        """`value` as the protocol sends it, or ProxyLimit with a sentence."""
        if value is None or isinstance(value, bool | int | float | str | bytes | Handle):
            return value
        if isinstance(value, torch.Size):
            return tuple(int(v) for v in value)
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            return value
        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            return value.item()
        if isinstance(value, list):
            return [self.to_wire(v, what) for v in value]
        if isinstance(value, tuple):
            return tuple(self.to_wire(v, what) for v in value)
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {k: self.to_wire(v, what) for k, v in value.items()}
        if isinstance(value, HandleProxy):
            return value.wire()
        if isinstance(value, AttrProxy):
            return self.to_wire(value.resolve(), what)
        if isinstance(value, OpaqueAnswer):
            if value.handle is not None:
                return value.handle
            raise self.answer(
                AnswerError(
                    f"`{value.who}` gave a {value.type_name}, which "
                    "cannot be passed back to the student's code"
                )
            )
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        raise ProxyLimit(f"it passes a {kind} to `{what}`; only {SENDABLE} can go into the sandbox")
