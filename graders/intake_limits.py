"""The limits of submission intake and the refusals that name them, shared by the
readers of code files (graders.intake) and of model files (graders.model_files); and the
bounded JSON reading both use (no RecursionError escapes, nesting checked iteratively).

Every refusal is an ``IntakeError`` (a sentence for the student); ``IntakeLimit`` and
``IntakeTooLarge`` (bytes) also name the limit that was passed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    #: JSON nesting (a notebook is about 6 deep; widget metadata a few more).
    max_depth: int = 64
    #: Cells of a notebook (all types) or `# %%` cells of a .py file.
    max_cells: int = 2000
    #: Characters of code, all cells together.
    max_source_chars: int = 2_000_000
    max_tensors: int = 10_000
    max_tensor_header_bytes: int = 2 * 1024 * 1024
    max_tensor_dims: int = 16
    max_archive_entries: int = 10_000
    #: Wall-clock seconds for reading one file.
    seconds: float = 5.0


API_LIMITS = Limits()
#: The grader reads what the API accepted: the same limits of content, four times the
#: time; the byte limit (the service's setting) was applied by the API when receiving.
WORKER_LIMITS = replace(API_LIMITS, seconds=API_LIMITS.seconds * 4, max_bytes=2**40)


class IntakeError(ValueError):
    """The file cannot be graded; the message is a sentence for the student."""

    def __init__(self, message: str) -> None:
        message = message.strip()
        super().__init__(message if message.endswith((".", "?", "!")) else message + ".")


class IntakeLimit(IntakeError):
    """A limit of the file's content was passed; `limit` names it."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class IntakeTooLarge(IntakeLimit):
    """The file has more bytes than the limit."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            "max_bytes", f"The file is too large: the limit is {size_text(limit_bytes)}."
        )
        self.limit_bytes = limit_bytes


def size_text(n: int) -> str:
    """A byte count as a student reads it."""
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MB"
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    return f"{n // 1024} KB" if n >= 1024 else f"{n} bytes"


class Budget:
    """The time budget of one reading: check() refuses once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise IntakeLimit(
                "seconds",
                f"Reading the file took longer than the "
                f"{self.seconds:g} s the grader allows; it is too "
                "complex (send fewer or smaller cells).",
            )


# -- JSON -----------------------------------------------------------------------------


def _depth_refusal(what: str, limits: Limits) -> IntakeLimit:
    return IntakeLimit(
        "max_depth",
        f"The {what} is nested too deeply: the limit is "
        f"{limits.max_depth} levels of lists and objects.",
    )


def load_json(text: str, what: str, limits: Limits, check_depth: bool = True) -> Any:
    """json.loads with the depth limit; never lets a RecursionError out."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise _depth_refusal(what, limits) from None
    except json.JSONDecodeError as exc:
        raise IntakeError(
            f"The file is not a Jupyter notebook: it is not valid JSON ({exc.msg} at line "
            f"{exc.lineno}, column {exc.colno}). Was it saved completely?"
            if what == "notebook"
            else f"The {what} is not valid JSON ({exc.msg})."
        ) from exc
    except (ValueError, MemoryError) as exc:
        raise IntakeError(f"The {what} is not valid JSON ({exc}).") from exc
    if check_depth:
        check_nesting(value, what, limits)
    return value


def check_nesting(value: Any, what: str, limits: Limits) -> None:
    """Iterative: the depth of nested lists and objects, refused past the limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise _depth_refusal(what, limits)
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list) and child:
                stack.append((child, depth + 1))
            elif isinstance(child, dict | list) and depth + 1 > limits.max_depth:
                raise _depth_refusal(what, limits)
