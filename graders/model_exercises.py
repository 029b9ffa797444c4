"""Model exercises, on the trusted side: run the student's model, score it, explain it.

A model exercise's hidden tests (in the assignment's tests.py) use these helpers:
`predict(student, x)` loads the submitted model file in the sandbox (once per sandbox)
and runs it on a batch the grader chose; `check_logits` turns a malformed answer into
a sentence; `scaled_fraction` is the course's accuracy-to-points rule;
`accuracy_report` explains the score (per-class accuracy and confusion matrix). Labels
never leave the grader: the sandbox gets inputs and sends back logits.

The self-check of model exercises is graders/selfcheck_models.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from graders.compare import describe_type
from graders.dsl import Fail, GraderError
from graders.student import Student, StudentError
from protocol.codec import Handle

# -- running the student's model ----------------------------------------------------


def cached(student: Student, key: str, compute: Callable[[], Any]) -> Any:
    """A value computed once per graded submission (e.g. the logits on the held-out set).

    A failure of the student's model is kept too: the next test that needs the value
    reports the same error instead of running the model into it again.
    """
    cache = student.cache
    if key not in cache:
        try:
            cache[key] = compute()
        except StudentError as exc:
            cache[key] = exc
            raise
    value = cache[key]
    if isinstance(value, StudentError):
        raise value
    return value


#: Loading gets at least this long: a fresh sandbox may still be importing torch.
LOAD_TIMEOUT = 20.0


def model_handle(student: Student, timeout: float | None = None) -> Handle:
    """The submitted model, loaded in the current sandbox (again after a restart)."""
    path, file_format, options = student.model_path, student.model_format, student.options
    if not path or not file_format:
        raise GraderError("a model exercise was graded without a model file (model_path)")
    sandbox = student.session.ensure()
    cache = student.cache
    held = cache.get("handle")
    if held is not None and held[0] is sandbox:
        if isinstance(held[1], StudentError):
            raise held[1]
        kept: Handle = held[1]
        return kept
    try:
        handle = student.load_model(
            str(path),
            str(file_format),
            options.get("architecture"),
            dict(options.get("architecture_kwargs") or {}),
            timeout=timeout or max(student.call_timeout, LOAD_TIMEOUT),
        )
    except StudentError as exc:
        if exc.outcome == "error":  # deterministic: the next test gets the same answer
            exc.message = "the model could not be loaded: " + exc.message.strip()
            cache["handle"] = (student.session.sandbox, exc)
        raise
    cache["handle"] = (student.session.sandbox, handle)
    return handle


def predict(student: Student, x: torch.Tensor, timeout: float | None = None) -> Any:
    """Run the submitted model on x in the sandbox; return its answer, unchecked."""
    handle = model_handle(student, timeout=timeout)
    return student.call(handle, x, timeout=timeout)


def check_logits(value: Any, n: int, classes: int) -> torch.Tensor:
    """The model's answer as `[n, classes]` logits, or Fail with what is wrong with it.

    Any floating dtype is accepted here (the format test insists on float32).
    """
    if (
        isinstance(value, tuple | list)
        and value
        and all(isinstance(v, torch.Tensor) for v in value)
    ):
        raise Fail(
            f"the model returned a {type(value).__name__} of {len(value)} tensors; it must "
            f"return one tensor of logits [N, {classes}]"
        )
    if not isinstance(value, torch.Tensor):
        raise Fail(
            f"the model returned {describe_type(value)}; it must return a torch.Tensor "
            f"of logits [N, {classes}]"
        )
    if tuple(value.shape) != (n, classes):
        hint = ""
        if value.dim() == 1 and value.shape[0] == n:
            hint = " (it looks like class predictions: return the logits, before argmax)"
        elif value.dim() == 2 and value.shape[0] == classes and value.shape[1] == n:
            hint = " (it looks transposed)"
        raise Fail(
            f"the model returned shape {tuple(value.shape)} for {n} inputs; expected "
            f"({n}, {classes}), one logit per class{hint}"
        )
    if not value.is_floating_point():
        raise Fail(f"the model returned {value.dtype} values; expected float32 logits")
    bad = int((~torch.isfinite(value)).sum())
    if bad:
        raise Fail(f"{bad} of the {value.numel()} logits are NaN or infinite")
    return value


def scaled_fraction(accuracy: float, low: float, high: float) -> float:
    """The course's rule: 0 at `low` accuracy or below, all points at `high` or above."""
    return min(max((accuracy - low) / (high - low), 0.0), 1.0)


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    index = labels.long() * classes + predicted.long()
    return torch.bincount(index, minlength=classes * classes).reshape(classes, classes)


def accuracy_report(labels: torch.Tensor, predicted: torch.Tensor, classes: int) -> str:
    """Per-class accuracy and the confusion matrix, as a fixed-width text table."""
    matrix = confusion_matrix(labels, predicted, classes)
    width = max(4, len(str(int(matrix.max()))) + 1)
    head = "true   n    acc |" + "".join(f"{c:>{width}}" for c in range(classes))
    lines = [
        "per-class accuracy and confusion matrix (rows: true class, columns: predicted class)",
        head,
        "-" * len(head),
    ]
    for c in range(classes):
        row = matrix[c]
        total = int(row.sum())
        acc = f"{int(row[c]) / total:.3f}" if total else "  -  "
        cells = "".join(f"{int(v):>{width}}" if v else f"{'.':>{width}}" for v in row)
        lines.append(f"{c:>4} {total:>3}  {acc} |{cells}")
    return "\n".join(lines)
