"""Comparing a student's answer with the expected one, in the trusted grader.

Type first, then shape and dtype, then values; the verdict says what differs. Two
texts come out: `message`, safe for any test (no input or expected value in it,
only the kind and size of the difference), and `detail`, the values themselves,
shown only for visible tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from protocol.codec import Handle, Unsupported


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
) -> Verdict:
    """Compare a decoded student value with the reference value."""
    if isinstance(expected, tuple | list):
        if not isinstance(got, tuple | list):
            return Verdict(False, f"{path} should be a tuple of {len(expected)} values, "
                           f"got {describe_type(got)}")
        if len(got) != len(expected):
            return Verdict(False, f"{path} should have {len(expected)} elements, got {len(got)}")
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            verdict = compare(g, e, rtol, atol, check_dtype, f"element {i} of {path}")
            if not verdict.passed:
                return verdict
        return Verdict(True)
    if isinstance(expected, torch.Tensor):
        return compare_tensors(got, expected, rtol, atol, check_dtype, path)
    if isinstance(expected, bool):
        if not isinstance(got, bool | np.bool_) and not _is_scalar_tensor(got):
            return Verdict(False, f"{path} should be a bool, got {describe_type(got)}")
        ok = bool(_scalar(got)) == expected
        return Verdict(ok, "" if ok else f"{path} is wrong", f"expected {expected}, got {got}")
    if isinstance(expected, int):
        if isinstance(got, bool) or not isinstance(got, int):
            if isinstance(got, float) and got.is_integer():
                got = int(got)
            elif _is_scalar_tensor(got) and not torch.is_floating_point(got):
                got = int(got.item())
            else:
                return Verdict(False, f"{path} should be an int, got {describe_type(got)}")
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
