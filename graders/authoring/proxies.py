"""The student's names as an imported test sees them: proxies that reach into the sandbox.

An imported test (nbgrader's or Otter's Python) runs in the trusted grader. Each name
the submission defines is bound, in the test's namespace, to what the sandbox gives for
it: plain data (tensors, numpy arrays, numbers, strings, lists, tuples, str-keyed dicts,
sets) by value, anything else as a `HandleProxy`. Calling a proxy sends the call to the
sandbox (`Op.CALL` with the arguments as data); its result comes back by value or, when
it cannot travel as data, as another proxy holding a handle. Calling a method of a proxy
goes through the same request with `method=`.

The grader decides every verdict: truth values, equality, ordering, hashing and
membership of a sandbox object are never asked of the sandbox (`bool(proxy)` fails the
test; `proxy == x` is True only for the same sandbox object). An answer of a function
whose solution returns data, but which comes back as an object, is an `OpaqueAnswer`:
any use of it fails the test. So an object whose `__eq__` is always True earns nothing.

The requests themselves are graders.authoring.link's.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from graders.dsl import Fail
from graders.student import StudentError
from protocol.codec import Handle

if TYPE_CHECKING:
    from graders.authoring.link import SandboxLink

MAX_ITEMS = 100_000


class ProxyLimit(Fail):
    """The test asks a proxy for something it cannot carry: the sentence is the instructor's."""

    def __init__(self, message: str) -> None:
        super().__init__("this imported test cannot run in the grader: " + message)


class AnswerError(Fail):
    """The student's answer cannot be used the way the test uses it."""


class StudentRaised(Exception):
    """The student's code raised in the sandbox; a subclass of the builtin it raised."""

    student_error: StudentError


_RAISED: dict[str, type[StudentRaised]] = {}


def raised(exc: StudentError) -> StudentRaised:
    """An exception the test can catch as the student's (`except ValueError:` works)."""
    name = exc.failure.type if exc.failure is not None else "Exception"
    cls = _RAISED.get(name)
    if cls is None:
        base = getattr(builtins, name, None)
        bases: tuple[type, ...] = (StudentRaised,)
        if isinstance(base, type) and issubclass(base, Exception) and base is not Exception:
            bases = (StudentRaised, base)
        try:
            cls = type(name, bases, {})
        except TypeError:  # a builtin whose layout does not mix
            cls = type(name, (StudentRaised,), {})
        _RAISED[name] = cls
    error = cls(exc.failure.message if exc.failure is not None else exc.message)
    error.student_error = exc
    return error


class HandleProxy:
    """An object that lives in the sandbox: a function, a class or an instance."""

    __slots__ = ("_link", "_target", "type_name", "who")

    def __init__(self, link: SandboxLink, target: str | Handle, type_name: str, who: str) -> None:
        self._link = link
        self._target = target
        self.type_name = type_name
        self.who = who

    def wire(self) -> Handle:
        if isinstance(self._target, Handle):
            return self._target
        return self._link.name_handle(self._target)

    def _call_method(self, method: str, *args: Any, keep: bool = True) -> Any:
        value = self._link.request(
            self._target, args, method=method, keep=keep, what=f"{self.who}.{method}"
        )
        return self._link.result(value, f"{self.who}.{method}(...)") if keep else value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return AttrProxy(self._link, self._target, name, f"{self.who}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        by_name = isinstance(self._target, str)
        handle = self._link.request(
            self._target, args, kwargs, seed=0 if by_name else None, what=self.who
        )
        function = self._target if isinstance(self._target, str) else None
        return self._link.result(handle, f"{self.who}(...)", function)

    def __getitem__(self, key: Any) -> Any:
        return self._call_method("__getitem__", key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._call_method("__setitem__", key, value, keep=False)

    def __len__(self) -> int:
        value = self._call_method("__len__", keep=False)
        if type(value) is not int or value < 0:
            raise self._link.answer(AnswerError(f"len() of `{self.who}` is not a length"))
        return value

    def __iter__(self) -> Iterator[Any]:
        iterator = self._link.request(self._target, (), method="__iter__", what=self.who)
        for _ in range(MAX_ITEMS):
            try:
                item = self._link.request(iterator, (), method="__next__", what=self.who)
            except StudentRaised as exc:
                if isinstance(exc, StopIteration):
                    return
                raise
            yield self._link.result(item, f"an item of {self.who}")
        raise self._link.answer(AnswerError(f"`{self.who}` yields more than {MAX_ITEMS} items"))

    def _refuse(self, use: str) -> AnswerError:
        return self._link.answer(
            AnswerError(
                f"`{self.who}` is a {self.type_name} object that stays in the sandbox; it cannot "
                f"be used as {use} (return plain data: a tensor, a number, a list...)"
            )
        )

    def __bool__(self) -> bool:
        raise self._refuse("a truth value")

    def __contains__(self, item: Any) -> bool:
        raise self._refuse("a container for `in`")

    def __eq__(self, other: object) -> bool:  # decided here, never by the sandbox
        return isinstance(other, HandleProxy) and other._target == self._target

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(("sandbox object", self._target))

    def _number(self, method: str, kind: type) -> Any:
        value = self._call_method(method, keep=False)
        if type(value) is not kind:
            raise self._link.answer(
                AnswerError(f"{method} of `{self.who}` is not a {kind.__name__}")
            )
        return value

    def __float__(self) -> float:
        value: float = self._number("__float__", float)
        return value

    def __int__(self) -> int:
        value: int = self._number("__int__", int)
        return value

    def __index__(self) -> int:
        value: int = self._number("__index__", int)
        return value

    def __repr__(self) -> str:
        try:
            text = self._call_method("__repr__", keep=False)
        except Exception:
            text = None
        return text if isinstance(text, str) else f"<{self.type_name} object in the sandbox>"

    __str__ = __repr__

    def __instancecheck__(self, obj: Any) -> bool:
        verdict = self._link.request(
            self._link.builtin("isinstance"), [obj, self.wire()], keep=False, what="isinstance"
        )
        return verdict is True

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        raise ProxyLimit(f"it subclasses `{self.who}`, a class that lives in the sandbox")

    def __copy__(self) -> HandleProxy:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> HandleProxy:
        return self


def _sandbox_operator(name: str) -> Callable[..., Any]:
    def method(self: HandleProxy, *args: Any) -> Any:
        return self._call_method(name, *args)

    method.__name__ = name
    return method


_ARITHMETIC = (
    "add",
    "sub",
    "mul",
    "matmul",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "and",
    "or",
    "xor",
    "lshift",
    "rshift",
)
for _op in _ARITHMETIC:
    setattr(HandleProxy, f"__{_op}__", _sandbox_operator(f"__{_op}__"))
    setattr(HandleProxy, f"__r{_op}__", _sandbox_operator(f"__r{_op}__"))
for _op in ("neg", "pos", "abs", "invert"):
    setattr(HandleProxy, f"__{_op}__", _sandbox_operator(f"__{_op}__"))


class AttrProxy:
    """`obj.name` of a sandbox object: called, it is a method call; used, it is fetched."""

    __slots__ = ("_link", "_target", "_name", "who", "_value", "_resolved")

    def __init__(self, link: SandboxLink, target: str | Handle, name: str, who: str) -> None:
        self._link = link
        self._target = target
        self._name = name
        self.who = who
        self._value: Any = None
        self._resolved = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        handle = self._link.request(self._target, args, kwargs, method=self._name, what=self.who)
        return self._link.result(handle, f"{self.who}(...)")

    def resolve(self) -> Any:
        if not self._resolved:
            target = (
                self._target
                if isinstance(self._target, Handle)
                else self._link.name_handle(self._target)
            )
            handle = self._link.request(
                self._link.builtin("getattr"), [target, self._name], what=self.who
            )
            self._value = self._link.result(handle, self.who)
            self._resolved = True
        return self._value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __repr__(self) -> str:
        return repr(self.resolve())

    def __str__(self) -> str:
        return str(self.resolve())

    def __hash__(self) -> int:
        return hash(self.resolve())

    def __len__(self) -> int:
        return len(self.resolve())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.resolve())

    def __bool__(self) -> bool:
        return bool(self.resolve())

    def __float__(self) -> float:
        return float(self.resolve())

    def __int__(self) -> int:
        return int(self.resolve())

    def __index__(self) -> int:
        return operator.index(self.resolve())

    def __contains__(self, item: Any) -> bool:
        return item in self.resolve()

    def __getitem__(self, key: Any) -> Any:
        return self.resolve()[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return np.asarray(self.resolve(), dtype=dtype)

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        def plain(v: Any) -> Any:
            if isinstance(v, AttrProxy):
                return v.resolve()
            if isinstance(v, list | tuple):
                return type(v)(plain(x) for x in v)
            return v

        return func(*plain(tuple(args)), **{k: plain(v) for k, v in (kwargs or {}).items()})


def _resolved_operator(op: Callable[[Any, Any], Any], reflected: bool) -> Callable[..., Any]:
    def method(self: AttrProxy, other: Any) -> Any:
        other = other.resolve() if isinstance(other, AttrProxy) else other
        return op(other, self.resolve()) if reflected else op(self.resolve(), other)

    return method


for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(AttrProxy, f"__{_name}__", _resolved_operator(getattr(operator, _name), False))
for _op in _ARITHMETIC:
    _func = getattr(operator, f"{_op}_" if _op in ("and", "or") else _op)
    setattr(AttrProxy, f"__{_op}__", _resolved_operator(_func, False))
    setattr(AttrProxy, f"__r{_op}__", _resolved_operator(_func, True))
for _op in ("neg", "pos", "abs", "invert"):
    setattr(
        AttrProxy, f"__{_op}__", (lambda f: lambda self: f(self.resolve()))(getattr(operator, _op))
    )


class OpaqueAnswer:
    """An answer that is an object where the solution gives data: every use of it fails."""

    __slots__ = ("_link", "handle", "type_name", "who")

    def __init__(self, link: SandboxLink, handle: Handle | None, type_name: str, who: str) -> None:
        self._link = link
        self.handle = handle
        self.type_name = type_name
        self.who = who

    def refuse(self) -> AnswerError:
        return self._link.answer(
            AnswerError(
                f"`{self.who}` gave a {self.type_name} object, which cannot leave the sandbox, "
                "where the solution gives a value (a tensor, a number, a list...)"
            )
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise self.refuse()

    def __repr__(self) -> str:
        return f"<{self.type_name} object in the sandbox>"

    __str__ = __repr__

    def __hash__(self) -> int:
        raise self.refuse()

    def __copy__(self) -> OpaqueAnswer:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> OpaqueAnswer:
        return self

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        for value in (*args, *(kwargs or {}).values()):
            if isinstance(value, OpaqueAnswer):
                raise value.refuse()
        return NotImplemented


def _refusing(self: OpaqueAnswer, *args: Any) -> Any:
    raise self.refuse()


for _name in (
    "bool",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "len",
    "iter",
    "contains",
    "getitem",
    "call",
    "float",
    "int",
    "index",
    "neg",
    "pos",
    "abs",
    "invert",
    "array",
    *_ARITHMETIC,
    *(f"r{op}" for op in _ARITHMETIC),
):
    setattr(OpaqueAnswer, f"__{_name}__", _refusing)
