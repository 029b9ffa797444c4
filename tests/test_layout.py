"""The house rule on module size: no Python module of the project over 500 lines."""

from __future__ import annotations

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.fast

MAX_LINES = 500
PACKAGES = ("api", "bench", "cli", "core", "graders", "migrations", "protocol", "scripts", "worker")


def test_no_module_is_over_500_lines() -> None:
    modules = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    assert len(modules) > 100, "the packages were not found"
    long = {
        str(path.relative_to(ROOT)): lines
        for path in modules
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (lines): {long}"
