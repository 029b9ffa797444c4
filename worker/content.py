"""What a worker fetches to grade a job, and its bounded local cache of it.

A job names a submission (a blob) and an assignment version (a bundle, also a blob);
both come from the service's blob store (core/blobs.py), so a worker needs nothing
shared with the API but the database (and the bucket, with S3). The cache lives in
`<data_dir>/cache` (AUTOGRADER_CACHE_DIR), one per worker machine, shared by the
worker's pool processes:
- `blobs/<sha[:2]>/<sha>`: submissions, checked against their sha256;
- `bundles/<sha>/<slug>/`: unpacked assignment versions, checked against the version
  the job names. A bundle is unpacked in `tmp/` and renamed into place, so a process
  never sees half of one, and two that unpack it at once keep one.
Everything counts towards `cache_max_bytes`; past it, the least recently used entries
go first (a use refreshes an entry's mtime), except those used within `KEEP_SECONDS`,
which another pool process may be grading with right now.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from core.blobs import BlobNotFound, Blobs, FolderBlobStore, check_sha
from core.bundles import BundleError, unpack_bundle

log = logging.getLogger("autograder.worker")

#: An entry used this recently is never evicted (a job may be reading it).
KEEP_SECONDS = 600.0
#: Leftovers of an interrupted fetch older than this are removed.
STALE_TMP_SECONDS = 3600.0
#: New entries this process adds between two walks of the whole cache (the other
#: processes sharing the folder add theirs unseen, so the estimate is recounted).
RECOUNT_EVERY = 64


class MissingContent(RuntimeError):
    """What the job names cannot be had: not the student's fault, the job is retried."""


class LocalCache:
    def __init__(
        self,
        root: Path,
        max_bytes: int,
        keep_seconds: float = KEEP_SECONDS,
        legacy: FolderBlobStore | None = None,
    ) -> None:
        self.root = root
        #: A blob folder written before the shared store (an API of an older version on
        #: this machine): read from when the store lacks a blob, never written to.
        self.legacy = legacy
        self.max_bytes = max_bytes
        self.keep_seconds = keep_seconds
        #: Bytes used at the last walk plus what this process added since: the cache is
        #: walked (a stat per entry) only when that passes the bound, or every
        #: RECOUNT_EVERY additions, not for every new blob.
        self.estimate: int | None = None
        self.added_since_walk = 0
        self.blobs = root / "blobs"
        self.bundles = root / "bundles"
        self.tmp = root / "tmp"
        # Plain modes, like reference/ in a checkout: the sandbox never sees this folder
        # (it is inside the data folder, a secret path), only binds of public/ from it.
        for folder in (self.blobs, self.bundles, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    # -- blobs --------------------------------------------------------------------------
    def blob_path(self, store: Blobs, sha256: str) -> Path:
        """A local file holding the blob (the store's own file for the folder backend)."""
        check_sha(sha256)
        if isinstance(store, FolderBlobStore) and store.exists(sha256):
            return store.path_for(sha256)
        path = self.blobs / sha256[:2] / sha256
        if path.exists():
            _touch(path)
            return path
        try:
            store.save_to(sha256, path)
        except BlobNotFound as exc:
            if self.legacy is not None and self.legacy.exists(sha256):
                log.warning(
                    "blob %s is not in the %s store, only in the folder %s "
                    "(`autograder migrate` copies such blobs over)",
                    sha256,
                    store.backend,
                    self.legacy.root,
                )
                return self.legacy.path_for(sha256)
            raise MissingContent(str(exc)) from exc
        self._added(path)
        return path

    def read_blob(self, store: Blobs, sha256: str) -> bytes:
        for _ in range(3):
            path = self.blob_path(store, sha256)
            try:
                return path.read_bytes()
            except FileNotFoundError:  # evicted between the two lines: fetch again
                continue
        raise MissingContent(f"blob {sha256} vanished from the cache three times")

    # -- bundles ------------------------------------------------------------------------
    def assignment_folder(
        self, store: Blobs, bundle_sha256: str, slug: str, version: str | None = None
    ) -> Path:
        """The unpacked assignment folder of a bundle, fetched and unpacked if needed."""
        check_sha(bundle_sha256)
        if not slug or "/" in slug or slug.startswith("."):
            raise MissingContent(f"not an assignment slug: {slug!r}")
        top = self.bundles / bundle_sha256
        folder = top / slug
        if folder.is_dir():
            _touch(top)
            return folder
        work = Path(tempfile.mkdtemp(prefix="bundle-", dir=self.tmp))
        try:
            archive = work / "bundle.tar.gz"
            try:
                store.save_to(bundle_sha256, archive)
            except BlobNotFound as exc:
                raise MissingContent(f"the bundle of {slug} version {version}: {exc}") from exc
            staged = work / "tree"
            try:
                with open(archive, "rb") as f:
                    unpack_bundle(f, staged / slug)
            except BundleError as exc:
                raise MissingContent(f"the bundle of {slug} version {version}: {exc}") from exc
            archive.unlink()
            if version is not None:
                from graders.course import folder_version

                got = folder_version(staged / slug)
                if got != version:
                    raise MissingContent(
                        f"the bundle {bundle_sha256} of {slug} unpacks to "
                        f"version {got}, not {version}"
                    )
            staged.chmod(0o755)
            try:
                os.rename(staged, top)
            except OSError:
                if not folder.is_dir():  # not a concurrent twin: a real failure
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info(
            "assignment %s version %s unpacked from bundle %s", slug, version, bundle_sha256[:12]
        )
        self._added(top)
        return folder

    # -- the bound ----------------------------------------------------------------------
    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, path) of every cached blob and bundle."""
        found: list[tuple[float, int, Path]] = []
        for path in self.blobs.glob("*/*"):
            with contextlib.suppress(OSError):
                st = path.stat()
                found.append((st.st_mtime, st.st_size, path))
        for top in self.bundles.iterdir():
            if top.name.startswith(".gone-"):  # an eviction that was interrupted
                shutil.rmtree(top, ignore_errors=True)
                continue
            with contextlib.suppress(OSError):
                size = _bytes_of(top)
                found.append((top.stat().st_mtime, size, top))
        return found

    def used_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def _added(self, path: Path) -> None:
        """Account for a new entry; trim when the bound may be passed."""
        try:
            size = _bytes_of(path)
        except OSError:
            size = 0
        if (
            self.estimate is not None
            and self.added_since_walk < RECOUNT_EVERY
            and self.estimate + size <= self.max_bytes
        ):
            self.estimate += size
            self.added_since_walk += 1
            return
        self.trim(protect=[path])

    def trim(self, protect: Iterable[Path] = ()) -> int:
        """Evict least recently used entries until under max_bytes; returns bytes freed."""
        kept = {Path(p) for p in protect}
        now = time.time()
        for leftover in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                if now - leftover.stat().st_mtime > STALE_TMP_SECONDS:
                    _remove(leftover)
        entries = sorted(self.entries())
        total = sum(size for _, size, _ in entries)
        freed = 0
        for mtime, size, path in entries:
            if total <= self.max_bytes:
                break
            if path in kept or now - mtime < self.keep_seconds:
                continue
            _remove(path)
            total -= size
            freed += size
        self.estimate, self.added_since_walk = total, 0
        return freed


def _bytes_of(path: Path) -> int:
    """A blob's size, or the sum of a bundle folder's files."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        # Renamed out of the way first: a reader never sees a half-removed bundle.
        doomed = path.with_name(f".gone-{path.name}-{os.getpid()}")
        try:
            os.rename(path, doomed)
        except OSError:
            return
        shutil.rmtree(doomed, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


_caches: dict[tuple[str, int], LocalCache] = {}


def local_cache() -> LocalCache:
    from core.settings import get_settings

    settings = get_settings()
    key = (str(settings.resolved_cache_dir), settings.cache_max_bytes)
    cache = _caches.get(key)
    if cache is None:
        legacy = (
            FolderBlobStore(settings.resolved_blob_dir)
            if settings.resolved_blob_backend != "folder"
            else None
        )
        cache = _caches[key] = LocalCache(
            settings.resolved_cache_dir, settings.cache_max_bytes, legacy=legacy
        )
    return cache
