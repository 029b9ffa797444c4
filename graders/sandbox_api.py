"""What the grading engine needs from a sandbox, and nothing about how it is built.

The worker provides the implementation (a forked, isolated child); the engine only
sends requests and reads replies, so it can be tested and reasoned about alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class SandboxTimeout(Exception):
    """The sandbox did not answer before the deadline; it has been killed."""


class SandboxCrashed(Exception):
    """The sandbox died (exit, signal, memory limit) or sent something unreadable."""

    def __init__(self, message: str, oom: bool = False) -> None:
        super().__init__(message)
        self.oom = oom


class Sandbox(Protocol):
    #: How the sandbox is isolated, in words, for the job record.
    isolation: str

    def request(
        self,
        message: dict[str, Any],
        timeout: float,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Send one request; return its reply. Raises SandboxTimeout or SandboxCrashed."""
        ...

    def close(self) -> None:
        """Kill the sandbox and everything it started."""
        ...


SandboxFactory = Callable[[], Sandbox]
