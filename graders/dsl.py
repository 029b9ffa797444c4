"""The hidden-test DSL an assignment's tests.py is written in.

A tests.py builds a `Suite`::

    suite = Suite()

    @suite.exercise("label_smoothing_ce")
    def _(ex: ExerciseBuilder) -> None:
        logits = ...
        ex.compare("uniform smoothing", args=(logits, target, 0.1), points=1,
                   visibility="visible")

        @ex.check("does not depend on the batch order", points=1)
        def _(student: Student) -> Verdict | bool | None: ...

`compare` calls the reference implementation (in the trusted grader) and the
student's function (in the sandbox) on the same inputs and compares the answers.
`check` runs any property the test author writes against the `Student` proxy.
Inputs are generated when the suite is built; expected values are computed once
per worker process and cached.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from graders.compare import Verdict, compare
from graders.student import ModelSpec, Student

Visibility = Literal["visible", "after_due", "hidden"]
VISIBILITIES = ("visible", "after_due", "hidden")


class GraderError(Exception):
    """The grader itself failed (a bug, a broken course): not the student's fault."""


class Fail(Exception):
    """Raised by a check to fail its test with a message for the student."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


CheckResult = Verdict | bool | None
CheckFn = Callable[[Student], CheckResult]


@dataclass
class TestCase:
    name: str
    points: float
    run: CheckFn
    visibility: Visibility = "hidden"
    timeout: float | None = None
    #: Shown for visible tests: how to reproduce it (the call and its inputs).
    description: str = ""

    def verdict(self, student: Student) -> Verdict:
        try:
            result = self.run(student)
        except Fail as fail:
            return Verdict(False, fail.message, fail.detail)
        if result is None or result is True:
            return Verdict(True)
        if result is False:
            return Verdict(False, "the check failed")
        return result


TestCase.__test__ = False  # type: ignore[attr-defined]


@dataclass
class ExerciseSpec:
    slug: str
    kind: str
    points: float
    tests: list[TestCase] = field(default_factory=list)
    #: Names the submission must define for this exercise to be graded.
    requires: tuple[str, ...] = ()
    device: str = "cpu"
    #: Seconds each call of this exercise may take (the service default when None).
    timeout: float | None = None


def build_trusted(spec: ModelSpec) -> torch.nn.Module:
    """Build the grader's own copy of a public helper object (for the reference side)."""
    import importlib

    module_name, _, class_name = spec.target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if spec.seed is not None:
        torch.manual_seed(spec.seed)
    obj = cls(*spec.args, **spec.kwargs)
    if spec.state is not None:
        obj.load_state_dict(spec.state)
    if spec.eval:
        obj.eval()
    return obj


def _trusted_copy(value: Any) -> Any:
    if isinstance(value, ModelSpec):
        return build_trusted(value)
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, list):
        return [_trusted_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_trusted_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _trusted_copy(v) for k, v in value.items()}
    return copy.deepcopy(value)


def describe_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        if isinstance(v, torch.Tensor):
            if v.numel() <= 12:
                return f"torch.tensor({v.tolist()}, dtype={v.dtype})"
            return f"<tensor shape={tuple(v.shape)} dtype={v.dtype}>"
        if isinstance(v, ModelSpec):
            return f"<{v.target.split(':')[-1]} model>"
        text = repr(v)
        return text if len(text) < 200 else text[:200] + "..."

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


class ExerciseBuilder:
    def __init__(self, spec: ExerciseSpec, reference: types.ModuleType) -> None:
        self.spec = spec
        self.reference = reference

    def add(self, test: TestCase) -> None:
        if test.visibility not in VISIBILITIES:
            raise ValueError(f"unknown visibility {test.visibility!r} in test {test.name!r}")
        if any(t.name == test.name for t in self.spec.tests):
            raise ValueError(f"two tests of {self.spec.slug} are named {test.name!r}")
        self.spec.tests.append(test)

    def check(
        self, name: str, points: float, visibility: Visibility = "hidden",
        timeout: float | None = None, description: str = "",
    ) -> Callable[[CheckFn], CheckFn]:
        def register(fn: CheckFn) -> CheckFn:
            self.add(TestCase(name, points, fn, visibility, timeout, description))
            return fn

        return register

    def compare(
        self,
        name: str,
        args: tuple[Any, ...],
        points: float,
        kwargs: dict[str, Any] | None = None,
        visibility: Visibility = "hidden",
        rtol: float = 1e-4,
        atol: float = 1e-5,
        function: str | None = None,
        reference: Callable[..., Any] | None = None,
        expected: Any = None,
        check_dtype: bool = True,
        seed: int = 0,
        timeout: float | None = None,
    ) -> None:
        """A test that compares the student's function with the reference on one input."""
        kwargs = dict(kwargs or {})
        function = function or self.spec.slug
        ref_fn = reference or getattr(self.reference, function)
        cache: dict[str, Any] = {}
        if expected is not None:
            cache["expected"] = expected

        def expected_value() -> Any:
            if "expected" not in cache:
                # Build trusted copies first: building a model draws random numbers, and the
                # reference must start from the same generator state as the student's call.
                ref_args, ref_kwargs = _trusted_copy(args), _trusted_copy(kwargs)
                torch.manual_seed(seed)
                try:
                    cache["expected"] = ref_fn(*ref_args, **ref_kwargs)
                except Exception as exc:
                    raise GraderError(f"the reference {function} failed on test {name!r}: "
                                      f"{type(exc).__name__}: {exc}") from exc
                if isinstance(cache["expected"], torch.Tensor):
                    cache["expected"] = cache["expected"].detach()
            return cache["expected"]

        def run(student: Student) -> Verdict:
            want = expected_value()
            got = student.call(function, *args, seed=seed, timeout=timeout, **kwargs)
            if student.last_mutated:
                return Verdict(
                    False,
                    f"{function} modified its input in place (tensor argument "
                    f"#{student.last_mutated[0] + 1}); it must leave its inputs unchanged",
                )
            verdict = compare(got, want, rtol=rtol, atol=atol, check_dtype=check_dtype)
            if visibility == "visible" and not verdict.passed:
                verdict.detail = (
                    f"call: {function}({describe_inputs(args, kwargs)})\n" + verdict.detail
                )
            return verdict

        self.add(
            TestCase(
                name, points, run, visibility, timeout,
                description=f"{function}({describe_inputs(args, kwargs)})",
            )
        )


class Suite:
    """All exercises of one assignment, as registered by its tests.py."""

    def __init__(self, seeds: list[int] | None = None) -> None:
        self.builders: dict[str, tuple[Callable[[ExerciseBuilder], None], tuple[str, ...]]] = {}
        self.seeds = list(seeds or [])

    def exercise(
        self, slug: str, requires: tuple[str, ...] | list[str] | None = None
    ) -> Callable[[Callable[[ExerciseBuilder], None]], Callable[[ExerciseBuilder], None]]:
        def register(fn: Callable[[ExerciseBuilder], None]) -> Callable[[ExerciseBuilder], None]:
            if slug in self.builders:
                raise ValueError(f"exercise {slug!r} is registered twice")
            self.builders[slug] = (fn, tuple(requires or ()))
            return fn

        return register
