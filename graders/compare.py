"""Comparing a student's answer with the expected one, in the trusted grader.

Type first, then shape and dtype, then (where the contract says so) detachment, then
values; the verdict says what differs. Two texts come out: `message`, safe for any test
(no input or expected value in it, only the kind and size of the difference), and
`detail`, the values themselves, shown only for visible tests.

Exact types: where the contract names a Python int, a float is wrong even when it is
whole (26.0 is not 26), and a bool is never an int. With `exact_types` (the contract
says "Python int") an integer tensor is wrong too.

Detachment: tensors come back from the sandbox re-created from bytes, so whether the
student's tensor was still attached to an autograd graph travels as a flag of the
protocol's tensor payload; `is_attached` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from protocol.codec import Handle, Unsupported
from protocol.codec import is_attached as wire_attached


@dataclass
class Verdict:
    passed: bool
    message: str = ""
    detail: str = ""
    #: For graded-on-a-scale tests (model accuracy): the share of the points earned.
    fraction: float | None = None

    @property
    def earned_fraction(self) -> float:
        if self.fraction is not None:
            return min(max(self.fraction, 0.0), 1.0)
        return 1.0 if self.passed else 0.0


def is_attached(value: Any) -> bool:
    """Whether a tensor was still attached to an autograd graph.

    A tensor from the sandbox carries the protocol's flag (protocol.codec); one made in
    this process (unit tests, the grader's own values) answers through requires_grad.
    """
    if not isinstance(value, torch.Tensor):
        return False
    return wire_attached(value) or value.requires_grad or value.grad_fn is not None


def detached_verdict(got: Any, path: str = "the result") -> Verdict | None:
    """A failing verdict if `got` (or a tensor inside it) is still attached, else None."""
    if isinstance(got, tuple | list):
        for i, item in enumerate(got):
            verdict = detached_verdict(item, f"element {i} of {path}")
            if verdict is not None:
                return verdict
        return None
    if is_attached(got):
        return Verdict(
            False,
            f"{path} is still attached to the autograd graph (requires_grad=True or a "
            "grad_fn); the contract says it is returned detached: return it with .detach()",
        )
    return None


def describe_value(value: Any) -> str:
    """A value by its kind and size only (never its contents): safe for hidden tests."""
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a numpy {value.dtype} array of shape {value.shape}"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float | str):
        return f"a Python {type(value).__name__}"
    if isinstance(value, tuple | list):
        inner = ", ".join(describe_value(v) for v in value[:6])
        more = ", ..." if len(value) > 6 else ""
        return f"a {type(value).__name__} ({inner}{more})"
    if value is None:
        return "None"
    return describe_type(value)


def describe_type(value: Any) -> str:
    if isinstance(value, Unsupported):
        return value.type_name
    if isinstance(value, Handle):
        return "an object"
    if isinstance(value, torch.Tensor):
        return f"Tensor(shape={tuple(value.shape)}, dtype={value.dtype})"
    if isinstance(value, np.ndarray):
        return f"numpy.ndarray(shape={value.shape}, dtype={value.dtype})"
    return type(value).__name__


def _short(value: Any, limit: int = 600) -> str:
    if isinstance(value, torch.Tensor):
        with np.printoptions(precision=5, threshold=40, edgeitems=3):
            text = f"tensor{tuple(value.shape)} {value.detach().cpu().numpy()}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def compare(
    got: Any,
    expected: Any,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    check_dtype: bool = True,
    path: str = "the result",
    detached: bool = False,
    exact_types: bool = False,
) -> Verdict:
    """Compare a decoded student value with the reference value.

    detached: the contract says the result is returned detached (an attached tensor
    fails). exact_types: the contract names Python types (an int must be a Python int,
    not an integer tensor; a float never passes for an int, whatever the flag).
    """
    if isinstance(expected, tuple | list):
        if not isinstance(got, tuple | list):
            return Verdict(
                False,
                f"{path} should be a tuple of {len(expected)} values, got {describe_type(got)}",
            )
        if len(got) != len(expected):
            return Verdict(False, f"{path} should have {len(expected)} elements, got {len(got)}")
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            verdict = compare(
                g,
                e,
                rtol,
                atol,
                check_dtype,
                f"element {i} of {path}",
                detached=detached,
                exact_types=exact_types,
            )
            if not verdict.passed:
                return verdict
        return Verdict(True)
    if isinstance(expected, torch.Tensor):
        return compare_tensors(got, expected, rtol, atol, check_dtype, path, detached)
    if isinstance(expected, bool):
        if not isinstance(got, bool | np.bool_) and (exact_types or not _is_scalar_tensor(got)):
            return Verdict(False, f"{path} should be a bool, got {describe_type(got)}")
        ok = bool(_scalar(got)) == expected
        return Verdict(ok, "" if ok else f"{path} is wrong", f"expected {expected}, got {got}")
    if isinstance(expected, int):
        if isinstance(got, bool) or not isinstance(got, int):
            if (
                not exact_types
                and isinstance(got, torch.Tensor)
                and _is_scalar_tensor(got)
                and not torch.is_floating_point(got)
                and got.dtype != torch.bool
            ):
                got = int(got.item())
            else:
                return Verdict(False, _not_an_int(got, path, exact_types), f"got {_short(got)}")
        ok = got == expected
        return Verdict(ok, "" if ok else f"{path} is wrong", f"expected {expected}, got {got}")
    if isinstance(expected, float):
        if isinstance(got, bool) or not isinstance(got, int | float) and not _is_scalar_tensor(got):
            return Verdict(False, f"{path} should be a number, got {describe_type(got)}")
        value = float(_scalar(got))
        ok = math.isclose(value, expected, rel_tol=rtol, abs_tol=atol) or (
            math.isnan(value) and math.isnan(expected)
        )
        return Verdict(
            ok,
            "" if ok else f"{path} differs from the expected value by {abs(value - expected):.3g}",
            f"expected {expected!r}, got {value!r}",
        )
    if expected is None:
        ok = got is None
        return Verdict(ok, "" if ok else f"{path} should be None, got {describe_type(got)}")
    raise TypeError(f"the grader cannot compare expected values of type {type(expected)}")


def _not_an_int(got: Any, path: str, exact_types: bool) -> str:
    kind = "a Python int" if exact_types else "an int"
    text = f"{path} should be {kind}, got {describe_type(got)}"
    if isinstance(got, float):
        text += " (a whole-number float such as 26.0 is not an int: use // or int())"
    elif isinstance(got, bool):
        text += " (a bool is not an int)"
    elif isinstance(got, torch.Tensor):
        text += " (convert it with int(...) or .item())"
    return text


def _is_scalar_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.numel() == 1


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, torch.Tensor) else value


def compare_tensors(
    got: Any,
    expected: torch.Tensor,
    rtol: float,
    atol: float,
    check_dtype: bool = True,
    path: str = "the result",
    detached: bool = False,
) -> Verdict:
    if not isinstance(got, torch.Tensor):
        hint = ""
        if isinstance(got, np.ndarray):
            hint = " (convert it with torch.from_numpy)"
        elif isinstance(got, float | int):
            hint = " (return a tensor, not a Python number: drop the .item())"
        return Verdict(False, f"{path} should be a torch.Tensor, got {describe_type(got)}{hint}")
    if tuple(got.shape) != tuple(expected.shape):
        return Verdict(
            False,
            f"{path} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
        )
    if check_dtype and got.dtype != expected.dtype:
        return Verdict(False, f"{path} has dtype {got.dtype}, expected {expected.dtype}")
    if detached:
        verdict = detached_verdict(got, path)
        if verdict is not None:
            return verdict
    if expected.dtype == torch.bool or not torch.is_floating_point(expected):
        equal = torch.equal(got.to(expected.dtype), expected)
        if equal:
            return Verdict(True)
        wrong = int((got.to(expected.dtype) != expected).sum())
        return Verdict(
            False,
            f"{path}: {wrong} of {expected.numel()} values differ",
            f"expected {_short(expected)}\ngot      {_short(got)}",
        )
    g = got.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    nan_mismatch = torch.isnan(g) != torch.isnan(e)
    close = torch.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True) & ~nan_mismatch
    if bool(close.all()):
        return Verdict(True)
    bad = int((~close).sum())
    diff = (g - e).abs().nan_to_num(nan=float("inf"))
    diff = torch.where(close, torch.zeros_like(diff), diff)
    worst = int(diff.reshape(-1).argmax())
    where = tuple(int(i) for i in np.unravel_index(worst, tuple(e.shape))) if e.dim() else ()
    rel = diff / e.abs().clamp_min(1e-12)
    message = (
        f"{path}: {bad} of {e.numel()} values are outside the tolerance (rtol={rtol:g}, "
        f"atol={atol:g}); largest absolute error {float(diff.max()):.3g}"
        + (f" at index {where}" if where else "")
        + f", largest relative error {float(rel.max()):.3g}"
    )
    if bool(torch.isnan(g).any()) and not bool(torch.isnan(e).any()):
        message += "; your result contains NaN"
    detail = (
        f"at index {where}: expected {float(e.reshape(-1)[worst]):.6g}, "
        f"got {float(g.reshape(-1)[worst]):.6g}\n"
        f"expected {_short(expected)}\ngot      {_short(got)}"
    )
    return Verdict(False, message, detail)
