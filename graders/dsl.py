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
`check` runs any check the test author writes against the `Student` proxy.
`property` is a check of a stated property (invariance, an inverse, a transpose): its
function gets a `Probe`, whose `call` records each call's inputs and whose `tensor` /
`compare` hold every result to the contract's type, shape and dtype (float32 unless
said), so a failure names the property and the inputs' shapes and dtypes, and never
their values. `ex.contract(detached=True, exact_types=True)` states what the contract
says of an exercise's results; every `compare` test of the exercise then checks it.
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

from graders.compare import Verdict, compare, describe_type, describe_value, detached_verdict
from graders.student import HelperSpec, Student

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


#: What a check (or a property) may return: a Verdict, or True/None for passed and
#: False for failed.
CheckReturn = Verdict | bool | None
CheckFn = Callable[[Student], CheckReturn]


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


def build_trusted(spec: HelperSpec) -> torch.nn.Module:
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
    module: torch.nn.Module = obj
    return module


def _trusted_copy(value: Any) -> Any:
    if isinstance(value, HelperSpec):
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
        if isinstance(v, HelperSpec):
            return f"<{v.target.split(':')[-1]} model>"
        text = repr(v)
        return text if len(text) < 200 else text[:200] + "..."

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


def describe_shapes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The inputs of a call by kind, shape and dtype only: safe for hidden tests."""

    def one(v: Any) -> str:
        if isinstance(v, HelperSpec):
            return f"a {v.target.split(':')[-1]} model"
        return describe_value(v)

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


class Probe:
    """What a property test works with: the student's code, with each call's inputs kept.

    `call` (or `construct`) runs the student's code and remembers what it was given;
    `tensor` holds a result to the contract (a tensor, its shape, float32 unless said);
    `compare` compares two results with the dtype checked; `fail` fails the property.
    Every failure names the property and the last call with its inputs' shapes and
    dtypes (never their values).
    """

    def __init__(self, student: Student, name: str, detached: bool = False) -> None:
        self.student = student
        self.name = name
        self.detached = detached
        self.last_call = ""
        self._calls: dict[int, str] = {}
        self._names: dict[Any, str] = {}

    def _record(
        self, target: Any, method: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str:
        if isinstance(target, str):
            what = target
        else:
            try:
                what = self._names.get(target, "the object")
            except TypeError:  # not hashable
                what = "the object"
            if method:
                what += f".{method}"
        self.last_call = f"{what}({describe_shapes(args, kwargs)})"
        return self.last_call

    def call(
        self,
        target: Any,
        *args: Any,
        method: str | None = None,
        seed: int | None = 0,
        keep: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        call = self._record(target, method, args, kwargs)
        value = self.student.call(
            target, *args, method=method, seed=seed, keep=keep, timeout=timeout, **kwargs
        )
        if isinstance(value, tuple | list):
            for item in value:
                self._calls[id(item)] = call
        self._calls[id(value)] = call
        return value

    def construct(self, name: str, *args: Any, seed: int | None = 0, **kwargs: Any) -> Any:
        handle = self.student.construct(name, *args, seed=seed, **kwargs)
        self.last_call = f"{name}({describe_shapes(args, kwargs)})"
        label = f"{name}({', '.join(repr(a) for a in args if isinstance(a, int | str))})"
        try:
            self._names[handle] = label
        except TypeError:
            pass
        return handle

    def fail(self, reason: str, detail: str = "", call: str | None = None) -> Fail:
        """The Fail to raise: the property, the call and its inputs, the reason."""
        call = call or self.last_call
        where = f" on {call}" if call else ""
        return Fail(f'property "{self.name}" does not hold{where}: {reason}', detail)

    def tensor(
        self,
        value: Any,
        shape: tuple[int, ...] | None = None,
        dtype: torch.dtype | None = torch.float32,
        what: str = "the result",
    ) -> torch.Tensor:
        """`value` if it is a tensor of this shape and dtype (and detached if said), else Fail."""
        call = self._calls.get(id(value))
        if not isinstance(value, torch.Tensor):
            raise self.fail(
                f"{what} should be a torch.Tensor, got {describe_type(value)}", call=call
            )
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise self.fail(
                f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}", call=call
            )
        if dtype is not None and value.dtype != dtype:
            raise self.fail(f"{what} has dtype {value.dtype}, expected {dtype}", call=call)
        if self.detached:
            verdict = detached_verdict(value, what)
            if verdict is not None:
                raise self.fail(verdict.message, call=call)
        return value

    def compare(
        self,
        got: Any,
        want: Any,
        rtol: float = 1e-4,
        atol: float = 1e-5,
        path: str = "the result",
        check_dtype: bool = True,
        hint: str = "",
    ) -> Verdict:
        """compare(got, want) with shape and dtype checked; a failure raises Fail."""
        verdict = compare(got, want, rtol=rtol, atol=atol, check_dtype=check_dtype, path=path)
        if not verdict.passed:
            reason = verdict.message + (f" ({hint})" if hint else "")
            raise self.fail(reason, verdict.detail, call=self._calls.get(id(got)))
        return verdict


PropertyFn = Callable[[Probe], CheckReturn]


class ExerciseBuilder:
    def __init__(self, spec: ExerciseSpec, reference: types.ModuleType) -> None:
        self.spec = spec
        self.reference = reference
        #: What the contract says of every result of this exercise (see `contract`).
        self.detached = False
        self.exact_types = False

    def contract(self, detached: bool | None = None, exact_types: bool | None = None) -> None:
        """State what the contract says of this exercise's results, for all its tests.

        detached: results must not be attached to an autograd graph (docs/course.md:
        "returned detached"). exact_types: Python ints where the contract names them
        (a float, even 26.0, or an integer tensor is wrong).
        """
        if detached is not None:
            self.detached = detached
        if exact_types is not None:
            self.exact_types = exact_types

    def add(self, test: TestCase) -> None:
        if test.visibility not in VISIBILITIES:
            raise ValueError(f"unknown visibility {test.visibility!r} in test {test.name!r}")
        if any(t.name == test.name for t in self.spec.tests):
            raise ValueError(f"two tests of {self.spec.slug} are named {test.name!r}")
        self.spec.tests.append(test)

    def check(
        self,
        name: str,
        points: float,
        visibility: Visibility = "hidden",
        timeout: float | None = None,
        description: str = "",
    ) -> Callable[[CheckFn], CheckFn]:
        def register(fn: CheckFn) -> CheckFn:
            self.add(TestCase(name, points, fn, visibility, timeout, description))
            return fn

        return register

    def property(
        self,
        name: str,
        points: float,
        visibility: Visibility = "hidden",
        timeout: float | None = None,
        description: str = "",
    ) -> Callable[[PropertyFn], PropertyFn]:
        """A property test: its function gets a `Probe` (see there) and may return a
        Verdict / bool / None or raise Fail; any failure names the property."""

        def register(fn: PropertyFn) -> PropertyFn:
            detached = self.detached

            def run(student: Student) -> Verdict:
                probe = Probe(student, name, detached=detached)
                result = fn(probe)
                if result is None or result is True:
                    return Verdict(True)
                if result is False:
                    raise probe.fail("the check failed")
                if not result.passed:
                    raise probe.fail(result.message or "the check failed", result.detail)
                return result

            self.add(TestCase(name, points, run, visibility, timeout, description))
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
        detached: bool | None = None,
        exact_types: bool | None = None,
    ) -> None:
        """A test that compares the student's function with the reference on one input.

        detached / exact_types default to the exercise's `contract`.
        """
        kwargs = dict(kwargs or {})
        detached = self.detached if detached is None else detached
        exact_types = self.exact_types if exact_types is None else exact_types
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
                    raise GraderError(
                        f"the reference {function} failed on test {name!r}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
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
            verdict = compare(
                got,
                want,
                rtol=rtol,
                atol=atol,
                check_dtype=check_dtype,
                detached=detached,
                exact_types=exact_types,
            )
            if visibility == "visible" and not verdict.passed:
                verdict.detail = (
                    f"call: {function}({describe_inputs(args, kwargs)})\n" + verdict.detail
                )
            return verdict

        self.add(
            TestCase(
                name,
                points,
                run,
                visibility,
                timeout,
                description=f"{function}({describe_inputs(args, kwargs)})",
            )
        )

    def imported(
        self,
        name: str,
        points: float,
        source: str,
        position: int,
        style: str = "assert",
        visibility: Visibility = "hidden",
        hidden_lines: tuple[int, ...] = (),
        per_assert: bool = False,
        failure_message: str = "",
        timeout: float | None = None,
    ) -> None:
        """A test cell imported from an nbgrader or Otter notebook (`autograder assignment
        import`): its Python runs in the trusted grader, after the first `position` cells
        of reference.py, with the student's names as proxies into the sandbox.

        style: "assert" (passes if it runs to the end; with per_assert, each top-level
        assert is an equal share), "ok" (the last expression's value and the prints must
        equal the reference's) or "exception" (its `test_*` functions are called).
        hidden_lines: lines of `source` feedback never quotes. See graders/authoring.
        """
        from graders.authoring.imported import imported_test

        self.add(
            imported_test(
                self,
                name,
                points,
                source,
                position,
                style,
                visibility,
                hidden_lines,
                per_assert,
                failure_message,
                timeout,
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
