"""Uploaded archives are hostile: core/archives.py refuses, with a sentence, every way an
archive can reach outside its folder or blow up, and writes nothing outside the folder
it made. No servers: the HTTP path is covered in tests/test_publish_service.py."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from pathlib import Path

import pytest

from core.archives import ArchiveLimits, unpack_archive
from core.errors import Unreadable
from tests.support.hostile_archives import entry, tar_gz, zip_bomb, zipped


@pytest.fixture
def arena(tmp_path: Path) -> Path:
    """A folder whose only child may be `out`: anything else there is an escape."""
    (tmp_path / "arena").mkdir()
    return tmp_path / "arena"


def refused(data: bytes, arena: Path, match: str, limits: ArchiveLimits | None = None) -> str:
    with pytest.raises(Unreadable, match=match) as caught:
        unpack_archive(data, arena / "out", limits)
    sentence = str(caught.value)
    assert sentence.endswith(".") and "\n" not in sentence
    escaped = [
        p
        for p in arena.parent.rglob("*")
        if p != arena and arena not in p.parents and p.name != "arena"
    ]
    assert not escaped, escaped
    assert [p.name for p in arena.iterdir()] == ["out"]
    return sentence


def test_a_plain_archive_unpacks(arena: Path) -> None:
    data = tar_gz(
        (entry("hw/assignment.toml"), b"slug = 'hw'\n"),
        (entry("hw/notebooks", tarfile.DIRTYPE), None),
        (entry("hw/notebooks/starter.ipynb"), b"{}"),
    )
    assert unpack_archive(data, arena / "out") == 2
    assert (arena / "out" / "hw" / "notebooks" / "starter.ipynb").read_bytes() == b"{}"
    assert (
        unpack_archive(zipped(("a/b.txt", b"x"), ("__MACOSX/a/._b.txt", b"junk")), arena / "zip")
        == 1
    )
    assert not (arena / "zip" / "__MACOSX").exists()


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
@pytest.mark.parametrize(
    "name", ["../escape.txt", "hw/../../escape.txt", "/tmp/escape.txt", "hw\\..\\escape.txt"]
)
def test_names_that_leave_the_folder_are_refused(arena: Path, name: str, kind: str) -> None:
    data = (
        tar_gz((entry("hw/ok.txt"), b"fine"), (entry(name), b"pwned"))
        if kind == "tar.gz"
        else zipped(("hw/ok.txt", b"fine"), (name, b"pwned"))
    )
    refused(data, arena, "absolute name|leaves its folder|backslash")
    assert not Path("/tmp/escape.txt").exists()


def test_links_devices_and_fifos_are_refused(arena: Path) -> None:
    cases = [
        (tar_gz((entry("hw/link", tarfile.SYMTYPE, "/etc/passwd"), None)), "link"),
        (
            tar_gz(
                (entry("hw/a.txt"), b"a"), (entry("hw/hard", tarfile.LNKTYPE, "hw/a.txt"), None)
            ),
            "link",
        ),
        (tar_gz((entry("hw/fifo", tarfile.FIFOTYPE), None)), "fifo"),
        (tar_gz((entry("hw/dev", tarfile.CHRTYPE), None)), "device"),
        (zipped(("hw/a.txt", b"a"), symlink=("hw/link", "/etc/passwd")), "symbolic link"),
    ]
    for number, (data, match) in enumerate(cases):
        with pytest.raises(Unreadable, match=match):
            unpack_archive(data, arena / f"out{number}")
    assert not any(p.is_symlink() for p in arena.rglob("*"))


def test_too_many_entries_and_too_deep(arena: Path) -> None:
    many = tar_gz(*[(entry(f"hw/f{i}.txt"), b"x") for i in range(30)])
    refused(many, arena, "more than 20 entries", ArchiveLimits(max_entries=20))
    deep = zipped(("/".join(["d"] * 40) + "/f.txt", b"x"))
    with pytest.raises(Unreadable, match="deeper than 12"):
        unpack_archive(deep, arena / "deep")


def test_a_zip_bomb_is_stopped_while_unpacking(arena: Path) -> None:
    bomb = zip_bomb(1024**3)  # 1 GiB of zeros, about 1 MB compressed
    assert len(bomb) < 2 * 1024 * 1024
    started = time.monotonic()
    # Stopped by counting the bytes written (no header is consulted), at the limit.
    sentence = refused(bomb, arena, "unpacks to more than", ArchiveLimits())
    assert "67108864 bytes" in sentence
    assert time.monotonic() - started < 30
    written = sum(p.stat().st_size for p in (arena / "out").rglob("*") if p.is_file())
    assert written <= ArchiveLimits().max_bytes


def test_a_tar_gz_bomb_and_a_huge_pax_header_are_stopped(arena: Path) -> None:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as gz:
        info = entry("hw/zeros.bin")
        info.size = 100 * 1024 * 1024
        gz.write(info.tobuf(tarfile.GNU_FORMAT))
        zeros = bytes(1024 * 1024)
        for _ in range(100):
            gz.write(zeros)
    refused(raw.getvalue(), arena, "unpacks to more than", ArchiveLimits(max_bytes=10_000_000))
    # A pax header that declares 50 MB of attributes: tarfile would read it whole.
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 50 * 1024 * 1024
    pax = io.BytesIO()
    with gzip.GzipFile(fileobj=pax, mode="wb", compresslevel=9) as gz:
        gz.write(header.tobuf(tarfile.USTAR_FORMAT))
        for _ in range(50):
            gz.write(zeros)
    with pytest.raises(Unreadable, match="unpacks to more than"):
        unpack_archive(pax.getvalue(), arena / "pax", ArchiveLimits(max_bytes=1_000_000))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage bytes, not an archive" * 10,
        b"PK\x03\x04" + b"\x00" * 100,
        b"\x1f\x8b" + b"\xff" * 100,
    ],
)
def test_garbage_is_not_an_archive(arena: Path, data: bytes) -> None:
    refused(data, arena, "not an archive|not a readable|no files")


def test_a_file_twice_or_a_file_under_a_file_is_refused(arena: Path) -> None:
    twice = tar_gz((entry("hw/a.txt"), b"1"), (entry("hw/a.txt"), b"2"))
    refused(twice, arena, "holds hw/a.txt twice")
    with pytest.raises(Unreadable, match="clashes with a file"):
        unpack_archive(zipped(("hw/a", b"1"), ("hw/a/b", b"2")), arena / "clash")


def test_the_destination_must_be_new(arena: Path) -> None:
    (arena / "taken").mkdir()
    (arena / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        unpack_archive(zipped(("keep.txt", b"overwritten")), arena / "taken")
    assert (arena / "taken" / "keep.txt").read_text() == "mine"
