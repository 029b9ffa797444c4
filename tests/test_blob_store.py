"""The blob store's contract, the same test over every backend: the folder (embedded
mode), the database on PostgreSQL (a fresh database, migrated by Alembic) and on
SQLite, and S3 against a local S3-compatible server (moto's, started here on a free
port of 127.0.0.1). Then the pieces built on it: deterministic course bundles and the
worker's bounded local cache."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import func, select

from core.blob_backends import DatabaseBlobStore, S3BlobStore
from core.blobs import CHUNK, BlobNotFound, Blobs, BlobTooLarge, FolderBlobStore
from core.bundles import build_bundle, unpack_bundle
from core.db import make_engine
from core.migrate import alembic_config
from core.models import Blob, BlobChunk
from graders.course import folder_version
from tests.support.paths import HW1_DIR
from tests.support.stack import (
    PG_ADMIN_URL,
    create_database,
    database_url,
    drop_database,
    free_port,
)
from worker.content import LocalCache, MissingContent

CAP = 4 * CHUNK + 123  # small enough to test quickly, several chunks


def migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    name = create_database()
    url = database_url(PG_ADMIN_URL, name)
    try:
        migrate(url)
        yield url
    finally:
        drop_database(name)


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("boto3")
    server = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(server).exists():
        pytest.skip("moto[server] is not installed (pip install -e '.[dev]')")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


#: folder and SQLite need no server: the fast tier (`make test-fast`) has them.
@pytest.fixture(
    params=[
        pytest.param("folder", marks=pytest.mark.fast),
        "database-postgresql",
        pytest.param("database-sqlite", marks=pytest.mark.fast),
        "s3",
    ]
)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Blobs]:
    kind = request.param
    if kind == "folder":
        yield FolderBlobStore(tmp_path / "blobs", max_bytes=CAP)
    elif kind.startswith("database"):
        if kind.endswith("postgresql"):
            url = request.getfixturevalue("pg_url")
        else:
            url = f"sqlite:///{tmp_path / 'blobs.db'}"
            migrate(url)
        engine = make_engine(url)
        with engine.begin() as conn:  # the PostgreSQL database is shared by the module
            conn.execute(BlobChunk.__table__.delete())
            conn.execute(Blob.__table__.delete())
        yield DatabaseBlobStore(engine, max_bytes=CAP)
        engine.dispose()
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        for key, value in (
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ):
            monkeypatch.setenv(key, value)
        s3 = S3BlobStore(
            bucket=f"b{os.urandom(6).hex()}",
            prefix="blobs/",
            endpoint_url=endpoint,
            region="us-east-1",
            max_bytes=CAP,
        )
        s3.prepare()
        yield s3


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the contract -----------------------------------------------------------------------


def test_write_read_exists(store: Blobs, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 777)  # several chunks, the last one short
    missing = sha(b"never stored")
    assert not store.exists(missing)
    with pytest.raises(BlobNotFound):
        store.read(missing)
    with pytest.raises(BlobNotFound):
        store.size(missing)

    digest, size = store.put_stream(io.BytesIO(data))
    assert (digest, size) == (sha(data), len(data))
    assert store.exists(digest) and store.size(digest) == len(data)
    assert store.read(digest) == data
    assert b"".join(store.iter_chunks(digest)) == data
    assert store.put_bytes(data) == digest  # the same content, the same name

    small = b"{}"
    assert store.put_bytes(small) == sha(small) and store.read(sha(small)) == small
    empty = store.put_bytes(b"")
    assert store.exists(empty) and store.read(empty) == b""

    dest = tmp_path / "out" / "copy"
    assert store.save_to(digest, dest) == len(data)
    assert dest.read_bytes() == data
    with pytest.raises(ValueError):
        store.exists("../../etc/passwd")


def test_size_cap(store: Blobs) -> None:
    over = os.urandom(CAP + 1)
    with pytest.raises(BlobTooLarge):
        store.put_bytes(over)
    with pytest.raises(BlobTooLarge):
        store.put_stream(io.BytesIO(over))
    assert not store.exists(sha(over))
    # A caller's own limit (an upload's) is below the store's cap.
    with pytest.raises(BlobTooLarge) as info:
        store.put_stream(io.BytesIO(b"x" * 1000), limit=999)
    assert info.value.limit == 999
    assert not store.exists(sha(b"x" * 1000))
    exactly = os.urandom(CAP)
    assert store.put_bytes(exactly) == sha(exactly)
    assert store.read(sha(exactly)) == exactly


def test_concurrent_writers_of_the_same_content(store: Blobs) -> None:
    data = os.urandom(3 * CHUNK + 5)

    def put(i: int) -> str:
        if i % 2:
            return store.put_bytes(data)
        return store.put_stream(io.BytesIO(data))[0]

    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(put, range(16)))
    assert set(names) == {sha(data)}
    assert store.read(sha(data)) == data
    if isinstance(store, DatabaseBlobStore):  # stored once: one row, one set of chunks
        with store.engine.connect() as conn:
            assert (
                conn.scalar(select(func.count()).select_from(Blob).where(Blob.sha256 == sha(data)))
                == 1
            )
            assert (
                conn.scalar(
                    select(func.count()).select_from(BlobChunk).where(BlobChunk.sha256 == sha(data))
                )
                == 4
            )
    if isinstance(store, FolderBlobStore):  # no temporary file left behind
        assert [p.name for p in store.root.rglob("*") if p.is_file()] == [sha(data)]


def test_damaged_blob_is_refused(store: Blobs, tmp_path: Path) -> None:
    data = os.urandom(CHUNK + 10)
    digest = store.put_bytes(data)
    if isinstance(store, FolderBlobStore):
        store.path_for(digest).write_bytes(b"tampered" + data[8:])
    elif isinstance(store, S3BlobStore):
        store.client.put_object(
            Bucket=store.bucket, Key=store.key(digest), Body=b"tampered" + data[8:]
        )
    else:
        assert isinstance(store, DatabaseBlobStore)
        with store.engine.begin() as conn:
            conn.execute(
                BlobChunk.__table__.update()
                .where(BlobChunk.sha256 == digest, BlobChunk.seq == 0)
                .values(data=b"tampered")
            )
    with pytest.raises(BlobNotFound):
        store.save_to(digest, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


# -- bundles and the worker's cache -------------------------------------------------------


@pytest.mark.fast
def test_bundle_is_deterministic_and_unpacks_to_the_same_version(tmp_path: Path) -> None:
    first, second = build_bundle(HW1_DIR), build_bundle(HW1_DIR)
    assert first == second
    out = tmp_path / "unpacked" / HW1_DIR.name
    unpack_bundle(io.BytesIO(first), out)
    assert folder_version(out) == folder_version(HW1_DIR)
    assert (out / "public").is_dir() and (out / "tests.py").is_file()
    assert all(oct(p.stat().st_mode & 0o777) in ("0o644", "0o755") for p in out.rglob("*"))


@pytest.mark.fast
def test_cache_fetches_once_unpacks_atomically_and_stays_bounded(tmp_path: Path) -> None:
    store = DatabaseBlobStore(make_engine(f"sqlite:///{tmp_path / 'b.db'}"), max_bytes=CAP * 4)
    migrate(f"sqlite:///{tmp_path / 'b.db'}")
    bundle = build_bundle(HW1_DIR)
    bundle_sha = store.put_bytes(bundle)
    version = folder_version(HW1_DIR)
    cache = LocalCache(tmp_path / "cache", max_bytes=3 * CHUNK, keep_seconds=0)

    with ThreadPoolExecutor(4) as pool:  # four pool processes asking at once
        folders = list(
            pool.map(
                lambda _: cache.assignment_folder(store, bundle_sha, HW1_DIR.name, version),
                range(4),
            )
        )
    assert len(set(folders)) == 1 and folder_version(folders[0]) == version
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    with pytest.raises(MissingContent):  # the job names another version than the bundle's
        cache.assignment_folder(store, bundle_sha, "other-slug", "0" * 16)

    blobs = [store.put_bytes(os.urandom(CHUNK)) for _ in range(4)]
    for i, digest in enumerate(blobs):
        assert cache.read_blob(store, digest) == store.read(digest)
        os.utime(cache.blobs / digest[:2] / digest, (1000 + i, 1000 + i))  # oldest first
    assert cache.used_bytes() <= 3 * CHUNK
    cached = {p.name for p in cache.blobs.glob("*/*")}
    assert blobs[-1] in cached and blobs[0] not in cached  # least recently used went first
    assert cache.read_blob(store, blobs[0]) == store.read(blobs[0])  # fetched again
    with pytest.raises(MissingContent):
        cache.read_blob(store, sha(b"nothing"))
