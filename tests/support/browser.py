"""Debian's Chromium driven by Playwright, for the page tests (tests/test_pages.py,
tests/test_manual_pages.py): where it is, how it starts on this closed network, and
where screenshots go."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from tests.support.paths import ROOT

CHROMIUM = Path("/usr/bin/chromium")
#: Headless as root; without the background-networking flags Chromium keeps trying
#: hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "test-artifacts" / "screenshots"
MISSING = "Debian's chromium is missing: run ./scripts/browser-deps (as root)."


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for the duration of the block (screenshots' folder made)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
