"""Content-addressed blob storage: uploads and course bundles, kept under their sha256.

One interface (`Blobs`), three backends chosen by `AUTOGRADER_BLOB_BACKEND`:
- `folder` (embedded mode): files under the blob folder, fsynced, renamed into place;
- `database` (the default with PostgreSQL): chunks in the service's own database,
  so the API and workers on other machines need nothing shared but the database
  (core/blob_backends.py);
- `s3`: an S3-compatible bucket (core/blob_backends.py, needs boto3).

Every write streams while hashing and counting, so a blob over the size cap is refused
before it is stored anywhere; a blob is visible under its name only once complete, and
writing the same bytes twice (even at once, from two processes) stores them once.
`get_blob_store()` is the service's store; `BlobStore(root)` is the folder backend.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
#: In memory up to this size while a write is hashed, then in a temporary file.
SPOOL_IN_MEMORY = 8 * 1024 * 1024
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


class BlobTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the limit of {limit} bytes")
        self.limit = limit


class BlobNotFound(FileNotFoundError):
    """No blob of that sha256 in the store (or only a damaged one)."""


def check_sha(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 digest: {sha256!r}")
    return sha256


@contextmanager
def spooled(source: BinaryIO, limit: int) -> Iterator[tuple[IO[bytes], str, int]]:
    """Copy a stream aside while hashing it: yields (file at 0, sha256, size).

    Raises BlobTooLarge as soon as `limit` is passed; nothing is kept.
    """
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise BlobTooLarge(limit)
            digest.update(chunk)
            spool.write(chunk)
        spool.seek(0)
        yield spool, digest.hexdigest(), size


class Blobs(ABC):
    """What every backend offers. Subclasses store complete, verified content only."""

    backend = "?"

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    # -- what a backend implements ----------------------------------------------------
    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def size(self, sha256: str) -> int:
        """The blob's size in bytes; BlobNotFound if there is none."""

    @abstractmethod
    def iter_chunks(self, sha256: str) -> Iterator[bytes]:
        """The blob's bytes, a chunk at a time; BlobNotFound if there is none."""

    @abstractmethod
    def _store(self, sha256: str, size: int, source: IO[bytes]) -> None:
        """Keep `size` bytes read from `source` (already hashed) under `sha256`; safe
        against a concurrent writer of the same content."""

    def prepare(self) -> None:
        """Create what the backend needs (folder, bucket); `autograder migrate` calls it."""
        return None

    # -- the same for all -------------------------------------------------------------
    def _cap(self, limit: int | None) -> int:
        return self.max_bytes if limit is None else min(limit, self.max_bytes)

    def put_stream(self, source: BinaryIO, limit: int | None = None) -> tuple[str, int]:
        """Store a stream; returns (sha256, size). BlobTooLarge past `limit` or the cap."""
        cap = self._cap(limit)
        with spooled(source, cap) as (spool, sha, size):
            if not self.exists(sha):
                self._store(sha, size, spool)
        return sha, size

    def put_bytes(self, data: bytes, limit: int | None = None) -> str:
        cap = self._cap(limit)
        if len(data) > cap:
            raise BlobTooLarge(cap)
        sha = hashlib.sha256(data).hexdigest()
        if not self.exists(sha):
            self._store(sha, len(data), io.BytesIO(data))
        return sha

    def read(self, sha256: str) -> bytes:
        return b"".join(self.iter_chunks(sha256))

    def save_to(self, sha256: str, dest: Path) -> int:
        """Write the blob to `dest` (atomically, checked against its sha256)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".fetch-")
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in self.iter_chunks(sha256):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha256:
                raise BlobNotFound(
                    f"blob {sha256} in the {self.backend} store is damaged "
                    f"(its bytes hash to {digest.hexdigest()})"
                )
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.backend}>"


class FolderBlobStore(Blobs):
    """Files under `root/<first two hex digits>/<sha256>`, fsynced before they are named."""

    backend = "folder"

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(max_bytes)
        self.root = root

    def path_for(self, sha256: str) -> Path:
        check_sha(sha256)
        return self.root / sha256[:2] / sha256

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def size(self, sha256: str) -> int:
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {sha256} in {self.root}") from None

    def iter_chunks(self, sha256: str) -> Iterator[bytes]:
        try:
            f = open(self.path_for(sha256), "rb")  # closed below
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {sha256} in {self.root}") from None
        with f:
            while chunk := f.read(CHUNK):
                yield chunk

    def read(self, sha256: str) -> bytes:
        try:
            return self.path_for(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {sha256} in {self.root}") from None

    def _store(self, sha256: str, size: int, source: IO[bytes]) -> None:
        def copy(out: IO[bytes]) -> None:
            while chunk := source.read(CHUNK):
                out.write(chunk)

        self._commit(sha256, copy)

    def put_bytes(self, data: bytes, limit: int | None = None) -> str:
        cap = self._cap(limit)
        if len(data) > cap:
            raise BlobTooLarge(cap)
        sha = hashlib.sha256(data).hexdigest()
        self._commit(sha, lambda f: f.write(data))
        return sha

    # The folder backend's own two-step write, for callers that spool first.
    def spool(self, source: BinaryIO, limit: int) -> tuple[Path, str, int]:
        """Copy a stream into a temporary file; returns (temp path, sha256, size).

        Raises BlobTooLarge as soon as the limit is passed; the temp file is removed.
        """
        limit = self._cap(limit)
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

    def _commit(self, sha: str, write: Callable[[IO[bytes]], object]) -> None:
        final = self.path_for(sha)
        if final.exists():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=".blob-")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            # Two writers of the same content each rename their own complete copy.
            os.replace(tmp_name, final)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)


#: The name the API and tools have always used for the folder store.
BlobStore = FolderBlobStore


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_folder_blobs(source: FolderBlobStore, dest: Blobs) -> int:
    """Copy the blobs of a folder store that `dest` lacks (an upgrade from the folder to
    a shared store: `autograder migrate`); returns how many were copied."""
    if not source.root.is_dir() or isinstance(dest, FolderBlobStore) and dest.root == source.root:
        return 0
    copied = 0
    for path in sorted(source.root.glob("??/*")):
        name = path.name
        if len(name) != 64 or name.startswith(".") or dest.exists(name):
            continue
        with open(path, "rb") as f:
            digest, _ = dest.put_stream(f, limit=dest.max_bytes)
        if digest != name:  # a damaged file: kept under its true name, and said so
            log.warning("blob file %s hashes to %s, not to its name", path, digest)
            continue
        copied += 1
    return copied


def adopt_folder_blobs(settings: Settings | None = None) -> int:
    """With a shared store configured, copy into it what the blob folder of this machine
    still holds from before (`autograder migrate` does it); returns how many."""
    from core.settings import get_settings

    settings = settings or get_settings()
    if settings.resolved_blob_backend == "folder":
        return 0
    return copy_folder_blobs(FolderBlobStore(settings.resolved_blob_dir), get_blob_store(settings))


_stores: dict[tuple[object, ...], Blobs] = {}


def get_blob_store(settings: Settings | None = None) -> Blobs:
    """The service's blob store as the settings describe it (one per process and pid)."""
    from core.settings import get_settings

    settings = settings or get_settings()
    backend = settings.resolved_blob_backend
    if backend == "folder":
        key: tuple[object, ...] = (backend, str(settings.resolved_blob_dir))
    elif backend == "database":
        key = (backend, settings.resolved_database_url)
    else:
        key = (
            backend,
            settings.s3_bucket,
            settings.s3_prefix,
            settings.s3_endpoint_url,
            settings.s3_region,
        )
    key = (*key, settings.blob_max_bytes, os.getpid())
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = _make_store(settings, backend)
    return store


def _make_store(settings: Settings, backend: str) -> Blobs:
    if backend == "folder":
        return FolderBlobStore(settings.resolved_blob_dir, settings.blob_max_bytes)
    from core import blob_backends

    if backend == "database":
        return blob_backends.DatabaseBlobStore(
            blob_backends.engine_for(settings.resolved_database_url), settings.blob_max_bytes
        )
    return blob_backends.S3BlobStore(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        max_bytes=settings.blob_max_bytes,
    )
