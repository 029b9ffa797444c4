"""Content-addressed blob store: uploads are kept under their sha256, written durably.

The write streams into a temporary file while hashing and counting, so an upload over
the size limit is refused before it fills the disk, and a blob is visible under its
final name only once it is complete and fsynced.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024


class BlobTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the limit of {limit} bytes")
        self.limit = limit


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self._commit(sha, lambda f: f.write(data))
        return sha

    def spool(self, source: BinaryIO, limit: int) -> tuple[Path, str, int]:
        """Copy a stream into a temporary file; returns (temp path, sha256, size).

        Raises BlobTooLarge as soon as the limit is passed; the temp file is removed.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise BlobTooLarge(limit)
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            os.unlink(tmp_name)
            raise
        return Path(tmp_name), digest.hexdigest(), size

    def adopt(self, tmp_path: Path, sha256: str) -> None:
        """Move a spooled file to its final name, durably (fsync file and folder)."""
        final = self.path_for(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            tmp_path.unlink(missing_ok=True)
            return
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, final)
        _fsync_dir(final.parent)

    def _commit(self, sha: str, write) -> None:  # type: ignore[no-untyped-def]
        final = self.path_for(sha)
        if final.exists():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=".blob-")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, final)
        _fsync_dir(final.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
