"""What a sandbox is allowed: its files, its limits, its device."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from protocol.limits import REPLY_LIMITS


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 2048
    cpu_seconds: int = 300
    processes: int = 64
    file_size_mb: int = 16
    open_files: int = 256
    output_bytes: int = 64 * 1024
    #: The largest reply frame the grader reads from the sandbox (protocol.limits).
    reply_bytes: int = REPLY_LIMITS.max_frame_bytes
    #: Size of the sandbox's private /tmp (and /dev/shm), a tmpfs.
    tmp_mb: int = 64

    def to_wire(self) -> dict[str, int]:
        """As sent to the zygote with each job (JSON over its socket)."""
        return asdict(self)

    @classmethod
    def from_wire(cls, data: object) -> SandboxLimits:
        """The limits the grader sent; a field it left out keeps its default."""
        given = data if isinstance(data, dict) else {}
        return cls(**{f.name: int(given[f.name]) for f in fields(cls) if f.name in given})


@dataclass(frozen=True)
class SandboxConfig:
    #: Folder holding the submission's files (read-only at /submission inside the
    #: sandbox); None: an empty /submission.
    submission_dir: Path | None = None
    #: The assignment's public helper folders, importable inside the sandbox.
    public_dirs: tuple[Path, ...] = ()
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    #: "cpu" or "cuda"; with cuda the child initialises CUDA itself.
    device: str = "cpu"
    #: "auto" (the strongest isolation the host allows) or "none" (a plain child process).
    isolation: str = "auto"
