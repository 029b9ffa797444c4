"""What the grader asks the sandbox, and the only reply shapes it accepts.

Every reply is validated here, on receipt, before any part of it is used: a field of
the wrong type, a reply to another request, or an event where a reply was due is a
`ProtocolViolation` (the student's code broke the protocol: that call is `crashed`,
the sandbox is killed). Every string of a reply is cleaned and capped here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from protocol import text
from protocol.codec import Handle

OUTPUT_CHARS = 16_000
ERROR_TYPE_CHARS = 120
ERROR_MESSAGE_CHARS = 2_000
TRACEBACK_CHARS = 4_000
CELL_MESSAGE_CHARS = 4_000
NAME_CHARS = 200
MAX_NAMES = 10_000
MAX_MUTATED = 10_000
ISOLATION_CHARS = 255
PROBLEM_CHARS = 300
MAX_PROBLEMS = 20
CELL_STATUSES = frozenset({"ok", "syntax_error", "error"})
#: The error type of a reply whose value was too large to send.
VALUE_TOO_LARGE = "ValueTooLarge"


class Op(StrEnum):
    PING = "ping"
    EXEC = "exec"
    DEFINED = "defined"
    CALL = "call"
    CONSTRUCT = "construct"
    LOAD_MODEL = "load_model"
    RELEASE = "release"


class ProtocolViolation(ValueError):
    """A reply that is not what the request allows; the message is one line for feedback."""


@dataclass(frozen=True)
class Failure:
    """The student's code raised: the exception's type, message and trimmed traceback."""

    type: str
    message: str
    traceback: str


@dataclass(frozen=True)
class CellResult:
    index: int
    status: str  # ok | syntax_error | error
    message: str


@dataclass(frozen=True)
class Reply:
    op: Op
    output: str = ""
    failure: Failure | None = None
    value: Any = None
    mutated: tuple[int, ...] = ()
    names: frozenset[str] = frozenset()
    cell: CellResult | None = None


@dataclass(frozen=True)
class Ready:
    isolation: str
    problems: tuple[str, ...] = ()
    stamps: dict[str, float] = field(default_factory=dict)


def request(op: Op, seq: int, **fields: Any) -> dict[str, Any]:
    """A request frame's document; the sandbox echoes `seq` in its reply."""
    return {"op": op.value, "seq": seq, **fields}


def parse_reply(op: Op, seq: int, raw: Any) -> Reply:
    if not isinstance(raw, dict):
        raise ProtocolViolation(f"the sandbox answered {_kind(raw)} where a reply was due")
    if "event" in raw:
        raise ProtocolViolation("the sandbox sent an event where a reply was due")
    if raw.get("seq") != seq or type(raw.get("seq")) is not int:
        raise ProtocolViolation("the sandbox sent a reply out of turn")
    ok = raw.get("ok")
    if type(ok) is not bool:
        raise ProtocolViolation("the sandbox sent a reply without a true/false 'ok'")
    output = _optional_text(raw, "output", OUTPUT_CHARS)
    if not ok:
        return Reply(op, output, failure=_failure(raw.get("error")))
    if op is Op.EXEC:
        return Reply(op, output, cell=_cell(raw))
    if op is Op.DEFINED:
        return Reply(op, output, names=_names(raw.get("names")))
    if op in (Op.CONSTRUCT, Op.LOAD_MODEL):
        value = raw.get("value")
        if not isinstance(value, Handle):
            raise ProtocolViolation("the sandbox did not return an object handle")
        return Reply(op, output, value=value)
    if op is Op.CALL:
        return Reply(op, output, value=raw.get("value"), mutated=_mutated(raw.get("mutated")))
    return Reply(op, output)


def parse_ready(raw: Any) -> Ready:
    """The sandbox's first frame: {"event": "ready", ...}, or why it could not start."""
    if not isinstance(raw, dict):
        raise ProtocolViolation(f"the sandbox's first frame is {_kind(raw)}")
    if raw.get("event") != "ready":
        reason = raw.get("error") if raw.get("event") == "failed" else None
        raise ProtocolViolation(
            text.clean(reason or "the sandbox's first frame is not 'ready'", ERROR_MESSAGE_CHARS)
        )
    problems = raw.get("problems")
    stamps = raw.get("stamps")
    return Ready(
        isolation=text.clean(raw.get("isolation") or "", ISOLATION_CHARS),
        problems=tuple(text.clean(p, PROBLEM_CHARS) for p in problems[:MAX_PROBLEMS])
        if isinstance(problems, list)
        else (),
        stamps={
            text.clean(k, NAME_CHARS): float(v)
            for k, v in stamps.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if isinstance(stamps, dict)
        else {},
    )


def _kind(value: Any) -> str:
    return f"a value of type {type(value).__name__}"


def _optional_text(raw: dict[str, Any], key: str, limit: int) -> str:
    value = raw.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProtocolViolation(f"the sandbox sent a reply whose '{key}' is not text")
    return text.clean(value, limit)


def _failure(error: Any) -> Failure:
    if not isinstance(error, dict):
        raise ProtocolViolation("the sandbox sent an error that is not a map")
    kind = error.get("type")
    if not isinstance(kind, str):
        raise ProtocolViolation("the sandbox sent an error without a type name")
    return Failure(
        type=text.clean(kind, ERROR_TYPE_CHARS),
        message=_optional_text(error, "message", ERROR_MESSAGE_CHARS),
        traceback=text.clean_tail(
            _optional_text(error, "traceback", TRACEBACK_CHARS * 2), TRACEBACK_CHARS
        ),
    )


def _cell(raw: dict[str, Any]) -> CellResult:
    index, status = raw.get("index"), raw.get("status")
    if type(index) is not int or status not in CELL_STATUSES:
        raise ProtocolViolation("the sandbox sent a cell report of the wrong shape")
    message = _optional_text(raw, "message", CELL_MESSAGE_CHARS * 2)
    return CellResult(index, str(status), text.clean_tail(message, CELL_MESSAGE_CHARS))


def _names(names: Any) -> frozenset[str]:
    if not isinstance(names, list) or len(names) > MAX_NAMES:
        raise ProtocolViolation("the sandbox sent a list of names of the wrong shape")
    if not all(isinstance(n, str) and len(n) <= NAME_CHARS for n in names):
        raise ProtocolViolation("the sandbox sent a name that is not a short string")
    return frozenset(text.clean(n, NAME_CHARS) for n in names)


def _mutated(mutated: Any) -> tuple[int, ...]:
    if mutated is None:
        return ()
    if (
        not isinstance(mutated, list)
        or len(mutated) > MAX_MUTATED
        or not all(type(i) is int and 0 <= i < MAX_MUTATED for i in mutated)
    ):
        raise ProtocolViolation("the sandbox sent a list of changed inputs of the wrong shape")
    return tuple(mutated)
