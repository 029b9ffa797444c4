"""What the grading engine needs from a sandbox, and nothing about how it is built.

The worker provides the implementation (a forked, isolated child); the engine only
sends requests and reads replies, so it can be tested and reasoned about alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class SandboxTimeout(Exception):
    """The sandbox did not answer before the deadline; it has been killed."""


class SandboxCrashed(Exception):
    """The sandbox died (exit, signal, memory limit) or sent something unreadable."""

    def __init__(self, message: str, oom: bool = False, protocol: bool = False) -> None:
        super().__init__(message)
        self.oom = oom
        #: It sent something the protocol does not allow (the student's code wrote it).
        self.protocol = protocol


class Sandbox(Protocol):
    #: How the sandbox is isolated, in words, for the job record.
    isolation: str

    def request(self, message: dict[str, Any], timeout: float) -> Any:
        """Send one request; return its reply as decoded, not yet validated.

        Decoding is bounded (protocol.limits); validation is the engine's
        (protocol.messages). Raises SandboxTimeout or SandboxCrashed, and in either
        case the sandbox has been closed.
        """
        ...

    def close(self) -> None:
        """Kill the sandbox and everything it started."""
        ...


SandboxFactory = Callable[[], Sandbox]

SandboxProvider = Callable[[tuple[Path, ...], Path | None], SandboxFactory]
"""Makes sandbox factories: (the assignment's public helper folders, the folder of the
submission's files or None) -> a factory of fresh sandboxes that see them. The engine
receives one from whoever assembles the pieces (the worker, `autograder course check`);
it never builds sandboxes itself."""
