"""Model exercises, on the trusted side: run the student's model, score it, explain it.

A model exercise's hidden tests (in the assignment's tests.py) use these helpers:
`predict(student, x)` loads the submitted model file in the sandbox (once per sandbox)
and runs it on a batch the grader chose; `check_logits` turns a malformed answer into
a sentence; `scaled_fraction` is the course's accuracy-to-points rule;
`accuracy_report` explains the score (per-class accuracy and confusion matrix). Labels
never leave the grader: the sandbox gets inputs and sends back logits.

Also here: the course self-check for model exercises (registered with
graders.selfcheck at import). An assignment with model exercises provides
`model_samples.py` in its folder, whose `samples(workdir, loaded)` writes model files
into workdir and returns `ModelSample`s saying what each must score.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from graders.compare import describe_type
from graders.course import CourseError, LoadedAssignment, import_file
from graders.dsl import Fail, GraderError
from graders.intake import IntakeError, detect_kind
from graders.runner import GradeReport, grade
from graders.sandbox_api import SandboxFactory
from graders.selfcheck import EPS, CheckResult, CheckRow, register_check
from graders.student import Student, StudentError
from protocol.codec import Handle

_CACHE_ATTR = "_model_exercise_cache"


# -- running the student's model ----------------------------------------------------


def _cache(student: Student) -> dict[str, Any]:
    cache = student.__dict__.get(_CACHE_ATTR)
    if cache is None:
        cache = {}
        student.__dict__[_CACHE_ATTR] = cache
    return cache


def cached(student: Student, key: str, compute: Callable[[], Any]) -> Any:
    """A value computed once per graded submission (e.g. the logits on the held-out set).

    A failure of the student's model is kept too: the next test that needs the value
    reports the same error instead of running the model into it again.
    """
    cache = _cache(student)
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
    path = getattr(student, "model_path", None)
    file_format = getattr(student, "model_format", None)
    if not path or not file_format:
        raise GraderError("a model exercise was graded without a model file (model_path)")
    options = getattr(student, "options", None) or {}
    sandbox = student.session.ensure()
    cache = _cache(student)
    held = cache.get("handle")
    if held is not None and held[0] is sandbox:
        if isinstance(held[1], StudentError):
            raise held[1]
        return held[1]
    try:
        handle = student.load_model(
            str(path), str(file_format), options.get("architecture"),
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
    if isinstance(value, tuple | list) and value and all(
        isinstance(v, torch.Tensor) for v in value
    ):
        raise Fail(
            f"the model returned a {type(value).__name__} of {len(value)} tensors; it must "
            f"return one tensor of logits [N, {classes}]"
        )
    if not isinstance(value, torch.Tensor):
        raise Fail(f"the model returned {describe_type(value)}; it must return a torch.Tensor "
                   f"of logits [N, {classes}]")
    if tuple(value.shape) != (n, classes):
        hint = ""
        if value.dim() == 1 and value.shape[0] == n:
            hint = " (it looks like class predictions: return the logits, before argmax)"
        elif value.dim() == 2 and value.shape[0] == classes and value.shape[1] == n:
            hint = " (it looks transposed)"
        raise Fail(f"the model returned shape {tuple(value.shape)} for {n} inputs; expected "
                   f"({n}, {classes}), one logit per class{hint}")
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


# -- the course self-check for model exercises -----------------------------------------


@dataclass(frozen=True)
class ModelSample:
    """A model file the self-check grades, and what it must score.

    min_fraction / max_fraction bound the exercise's score as a share of its points;
    every string of `feedback` must appear in the exercise's feedback; `same_as` names
    another sample whose score this one must equal (within `tolerance` points).
    """

    name: str
    exercise: str
    filename: str
    min_fraction: float = 0.0
    max_fraction: float = 1.0
    feedback: tuple[str, ...] = ()
    same_as: str | None = None
    tolerance: float = 1e-3

    @property
    def expectation(self) -> str:
        if self.min_fraction >= 1.0:
            text = "full marks"
        elif self.max_fraction <= 0.0:
            text = "zero"
        else:
            text = f"{self.min_fraction:.0%} to {self.max_fraction:.0%} of the points"
        if self.same_as:
            text += f", same as {self.same_as}"
        if self.feedback:
            text += ", explains why"
        return text


#: How the self-check gets a sandbox whose submission folder holds the model file.
SubmissionFactoryFor = Callable[[LoadedAssignment, Path], SandboxFactory]
_submission_factory: SubmissionFactoryFor | None = None


def set_submission_factory(make: SubmissionFactoryFor | None) -> None:
    """Choose the sandboxes the model self-check uses (default: the worker's launcher)."""
    global _submission_factory
    _submission_factory = make


def _factory_with(loaded: LoadedAssignment, folder: Path) -> SandboxFactory:
    if _submission_factory is not None:
        return _submission_factory(loaded, folder)
    from worker.sandbox.launcher import sandbox_factory

    return sandbox_factory(public_dirs=(loaded.meta.public_dir,), submission_dir=folder)


def _import_samples(path: Path, loaded: LoadedAssignment) -> Any:
    name = f"_dlp_model_samples_{loaded.meta.slug.replace('-', '_')}_{loaded.meta.version}"
    try:
        return import_file(name, path)
    except CourseError as exc:
        raise GraderError(str(exc)) from exc


def grade_model_file(
    loaded: LoadedAssignment, path: Path, exercise: str | None = None,
    factory_for: SubmissionFactoryFor | None = None, **grade_kwargs: Any,
) -> GradeReport:
    """Grade one model file the way the worker does: intake, then a sandbox that sees it."""
    data = path.read_bytes()
    kind = detect_kind(path.name, data)
    with tempfile.TemporaryDirectory(prefix="dlp-model-") as tmp:
        folder = Path(tmp)
        shutil.copyfile(path, folder / path.name)
        (folder / path.name).chmod(0o644)
        folder.chmod(0o755)  # the sandbox may run as another user
        factory = (factory_for or _factory_with)(loaded, folder)
        return grade(loaded, kind, data, factory, only=[exercise] if exercise else None,
                     model_path=path.name, **grade_kwargs)


@register_check
def check_model_exercises(
    folder: Path, loaded: LoadedAssignment, factory: SandboxFactory, result: CheckResult
) -> None:
    model_exercises = [s.slug for s in loaded.exercises.values() if s.kind == "model"]
    if not model_exercises:
        return
    slug = loaded.meta.slug
    samples_file = folder / "model_samples.py"
    if not samples_file.is_file():
        result.rows.append(CheckRow(slug, "model samples", "model_samples.py", {}, 0, 0, False,
                                    "the assignment has model exercises but no model_samples.py"))
        return
    module = _import_samples(samples_file, loaded)
    with tempfile.TemporaryDirectory(prefix="dlp-model-samples-") as tmp:
        workdir = Path(tmp)
        samples: list[ModelSample] = list(module.samples(workdir, loaded))
        scores: dict[str, float] = {}
        for exercise in model_exercises:
            if not any(s.exercise == exercise for s in samples):
                result.rows.append(CheckRow(slug, f"model samples of {exercise}", "at least 1",
                                            {}, 0, 0, False, "no sample model for it"))
        for sample in samples:
            _check_sample(loaded, workdir, sample, scores, result)


def _check_sample(
    loaded: LoadedAssignment, workdir: Path, sample: ModelSample, scores: dict[str, float],
    result: CheckResult,
) -> None:
    slug = loaded.meta.slug
    spec = loaded.exercises.get(sample.exercise)
    variant = f"model {sample.name}"
    if spec is None:
        result.rows.append(CheckRow(slug, variant, sample.expectation, {}, 0, 0, False,
                                    f"{sample.exercise} is not an exercise of this assignment"))
        return
    try:
        report = grade_model_file(loaded, workdir / sample.filename, sample.exercise)
    except IntakeError as exc:
        result.rows.append(CheckRow(slug, variant, sample.expectation, {}, 0, spec.points,
                                    False, f"intake refused the file: {exc}"))
        return
    score = report.exercise_score(sample.exercise)
    scores[sample.name] = score
    problems = []
    fraction = score / spec.points if spec.points else 0.0
    if fraction + EPS < sample.min_fraction:
        least = sample.min_fraction * spec.points
        problems.append(f"scored {score:g}, expected at least {least:g}")
    if fraction - EPS > sample.max_fraction:
        most = sample.max_fraction * spec.points
        problems.append(f"scored {score:g}, expected at most {most:g}")
    feedback = "\n".join(t.feedback for t in report.tests)
    missing = [text for text in sample.feedback if text not in feedback]
    if missing:
        problems.append(f"feedback lacks {missing!r}; it was {feedback[:300]!r}")
    if sample.same_as is not None:
        other = scores.get(sample.same_as)
        if other is None:
            problems.append(f"no earlier sample named {sample.same_as!r}")
        elif abs(other - score) > sample.tolerance:
            problems.append(f"scored {score:g} but {sample.same_as} scored {other:g}")
    result.rows.append(CheckRow(slug, variant, sample.expectation, {sample.exercise: score},
                                report.score, report.max_score, not problems,
                                "; ".join(problems)))
