"""The course self-check of model exercises: sample model files and what they must score.

An assignment with model exercises provides `model_samples.py` in its folder, whose
`samples(workdir, loaded)` writes model files into workdir and returns `ModelSample`s
saying what each must score; each is graded the way the worker grades an upload.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graders.course import CourseError, LoadedAssignment, import_file
from graders.dsl import GraderError
from graders.intake import detect_kind
from graders.intake_limits import IntakeError
from graders.runner import GradeReport, grade
from graders.sandbox_api import SandboxProvider
from graders.selfcheck_report import EPS, CheckResult, CheckRow


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


def _import_samples(path: Path, loaded: LoadedAssignment) -> Any:
    name = f"_dlp_model_samples_{loaded.meta.slug.replace('-', '_')}_{loaded.meta.version}"
    try:
        return import_file(name, path)
    except CourseError as exc:
        raise GraderError(str(exc)) from exc


def grade_model_file(
    loaded: LoadedAssignment,
    path: Path,
    provider: SandboxProvider,
    exercise: str | None = None,
    **grade_kwargs: Any,
) -> GradeReport:
    """Grade one model file the way the worker does: intake, then a sandbox that sees it."""
    data = path.read_bytes()
    kind = detect_kind(path.name, data)
    with tempfile.TemporaryDirectory(prefix="dlp-model-") as tmp:
        folder = Path(tmp)
        shutil.copyfile(path, folder / path.name)
        (folder / path.name).chmod(0o644)
        folder.chmod(0o755)  # the sandbox may run as another user
        factory = provider((loaded.meta.public_dir,), folder)
        return grade(
            loaded,
            kind,
            data,
            factory,
            only=[exercise] if exercise else None,
            model_path=path.name,
            **grade_kwargs,
        )


def check_model_exercises(
    folder: Path, loaded: LoadedAssignment, provider: SandboxProvider, result: CheckResult
) -> None:
    model_exercises = [s.slug for s in loaded.exercises.values() if s.kind == "model"]
    if not model_exercises:
        return
    slug = loaded.meta.slug
    samples_file = folder / "model_samples.py"
    if not samples_file.is_file():
        result.rows.append(
            CheckRow(
                slug,
                "model samples",
                "model_samples.py",
                {},
                0,
                0,
                False,
                "the assignment has model exercises but no model_samples.py",
            )
        )
        return
    module = _import_samples(samples_file, loaded)
    with tempfile.TemporaryDirectory(prefix="dlp-model-samples-") as tmp:
        workdir = Path(tmp)
        samples: list[ModelSample] = list(module.samples(workdir, loaded))
        scores: dict[str, float] = {}
        for exercise in model_exercises:
            if not any(s.exercise == exercise for s in samples):
                result.rows.append(
                    CheckRow(
                        slug,
                        f"model samples of {exercise}",
                        "at least 1",
                        {},
                        0,
                        0,
                        False,
                        "no sample model for it",
                    )
                )
        for sample in samples:
            _check_sample(loaded, workdir, sample, provider, scores, result)


def _check_sample(
    loaded: LoadedAssignment,
    workdir: Path,
    sample: ModelSample,
    provider: SandboxProvider,
    scores: dict[str, float],
    result: CheckResult,
) -> None:
    slug = loaded.meta.slug
    spec = loaded.exercises.get(sample.exercise)
    variant = f"model {sample.name}"
    if spec is None:
        result.rows.append(
            CheckRow(
                slug,
                variant,
                sample.expectation,
                {},
                0,
                0,
                False,
                f"{sample.exercise} is not an exercise of this assignment",
            )
        )
        return
    try:
        report = grade_model_file(loaded, workdir / sample.filename, provider, sample.exercise)
    except IntakeError as exc:
        result.rows.append(
            CheckRow(
                slug,
                variant,
                sample.expectation,
                {},
                0,
                spec.points,
                False,
                f"intake refused the file: {exc}",
            )
        )
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
    result.rows.append(
        CheckRow(
            slug,
            variant,
            sample.expectation,
            {sample.exercise: score},
            report.score,
            report.max_score,
            not problems,
            "; ".join(problems),
        )
    )
