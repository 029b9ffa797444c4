"""Tests of the sandbox's layers, on hosts that may lack some.

A test that checks a layer (namespaces, a uid of its own, pivot_root, cgroups,
seccomp, user namespaces) skips where the host cannot give it, unless the environment
says every layer is expected: `AUTOGRADER_EXPECT_FULL_ISOLATION=1` (set by .ci/run).
Then a missing layer fails the test, so CI never passes with a layer silently untested.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

EXPECT_VARIABLE = "AUTOGRADER_EXPECT_FULL_ISOLATION"


def full_isolation_expected() -> bool:
    return os.environ.get(EXPECT_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def layer_missing(reason: str) -> NoReturn:
    """Skip (a host without the layer), or fail where every layer is expected."""
    if full_isolation_expected():
        pytest.fail(f"{reason}; {EXPECT_VARIABLE}=1 says every sandbox layer is expected here")
    pytest.skip(reason)


def require_root() -> None:
    """The full sandbox (namespaces, a uid per slot, cgroups) needs a root worker."""
    if os.geteuid() != 0:
        layer_missing("needs root (the sandbox's namespaces and uids)")
