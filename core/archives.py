"""Unpacking an uploaded archive (.zip or .tar.gz) that nobody vouches for.

The archive is hostile until proven otherwise, so it is read entry by entry and
refused, with one sentence, at the first thing that is not a plain file or folder
inside the archive: a name with `..`, an absolute name, a symbolic or hard link, a
device or fifo, more than `max_entries` entries, a name nested deeper than
`max_depth`, more than `max_bytes` once uncompressed. The bytes are counted as they
are written, never taken from a header (a zip bomb's headers lie). Files are created
with O_EXCL|O_NOFOLLOW under a folder this module made itself, and nothing here ever
makes a link, so no entry can land outside it.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from core.errors import Unreadable

CHUNK = 64 * 1024
#: Names macOS's archiver adds beside the real files: skipped, never written.
SKIPPED_NAMES = frozenset({"__MACOSX", ".DS_Store"})


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int = 64 * 1024 * 1024
    max_entries: int = 2000
    max_depth: int = 12
    max_name_chars: int = 255


def unpack_archive(data: bytes, dest: Path, limits: ArchiveLimits | None = None) -> int:
    """Write the archive's files under `dest` (created here: it must not exist yet);
    returns the number of files. Unreadable with a sentence if the archive is refused
    (what was written so far stays under `dest`, for the caller to remove)."""
    limits = limits or ArchiveLimits()
    dest.mkdir(mode=0o755)
    writer = _Writer(dest, limits)
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        _unzip(data, writer)
    elif data[:2] == b"\x1f\x8b":
        _untar(data, writer)
    else:
        raise Unreadable(
            "The bundle is not an archive: send a .zip or a .tar.gz of the assignment's folder."
        )
    if writer.files == 0:
        raise Unreadable("The archive holds no files.")
    return writer.files


class _Writer:
    """Checks each entry's name and kind, and writes files with their bytes counted."""

    def __init__(self, dest: Path, limits: ArchiveLimits) -> None:
        self.dest = dest
        self.limits = limits
        self.entries = 0
        self.files = 0
        self.written = 0

    def target(self, raw_name: str) -> Path | None:
        """The path an entry's name stands for under dest (None: skip the entry)."""
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise Unreadable(f"The archive holds more than {self.limits.max_entries} entries.")
        shown = repr(raw_name[:100])
        if "\0" in raw_name or "\\" in raw_name:
            raise Unreadable(
                f"The archive has an entry with a NUL or a backslash in its name ({shown})."
            )
        name = PurePosixPath(raw_name)
        if name.is_absolute():
            raise Unreadable(f"The archive has an entry with an absolute name ({shown}).")
        parts = [p for p in name.parts if p != "."]
        if ".." in parts:
            raise Unreadable(f"The archive has an entry whose name leaves its folder ({shown}).")
        if not parts:
            return None
        if len(parts) > self.limits.max_depth:
            raise Unreadable(
                f"The archive nests folders deeper than {self.limits.max_depth} levels ({shown})."
            )
        if any(len(p) > self.limits.max_name_chars for p in parts):
            raise Unreadable(
                f"The archive has a name longer than {self.limits.max_name_chars} characters."
            )
        if SKIPPED_NAMES & set(parts):
            return None
        return self.dest.joinpath(*parts)

    def folder(self, path: Path) -> None:
        try:
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            raise Unreadable(
                f"The archive's folder {self._rel(path)} clashes with a file of "
                f"the same name ({exc.strerror})."
            ) from None

    def file(self, path: Path, source: IO[bytes]) -> None:
        self.folder(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            raise Unreadable(f"The archive holds {self._rel(path)} twice.") from None
        except OSError as exc:
            raise Unreadable(
                f"The archive's file {self._rel(path)} cannot be written ({exc.strerror})."
            ) from None
        with os.fdopen(fd, "wb") as out:
            for chunk in _chunks(source):
                self.written += len(chunk)
                if self.written > self.limits.max_bytes:
                    raise Unreadable(
                        f"The archive unpacks to more than {self.limits.max_bytes} bytes."
                    )
                out.write(chunk)
        self.files += 1

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.dest).as_posix()


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            return
        yield chunk


def _unzip(data: bytes, writer: _Writer) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise Unreadable(f"The bundle is not a readable .zip ({exc}).") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > writer.limits.max_entries:
            raise Unreadable(f"The archive holds more than {writer.limits.max_entries} entries.")
        for info in infos:
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                what = "a symbolic link" if kind == stat.S_IFLNK else "not a file or folder"
                raise Unreadable(
                    f"The archive's entry {info.filename[:100]!r} is {what}; "
                    "only files and folders are accepted."
                )
            path = writer.target(info.filename)
            if path is None:
                continue
            if info.is_dir():
                writer.folder(path)
                continue
            try:
                with archive.open(info) as source:
                    writer.file(path, source)
            except (
                zipfile.BadZipFile,
                zipfile.LargeZipFile,
                OSError,
                EOFError,
                NotImplementedError,
                RuntimeError,
            ) as exc:
                # RuntimeError: an encrypted entry; NotImplementedError: a compression
                # method this Python lacks.
                raise Unreadable(
                    f"The archive's entry {info.filename[:100]!r} cannot be read ({exc})."
                ) from None


class _Bounded(io.RawIOBase):
    """A read-only stream that refuses to give more than `limit` bytes in all: tar's own
    headers (a pax or GNU long-name header may declare any size, and tarfile reads it
    whole) come out of the decompressor through this too."""

    def __init__(self, source: gzip.GzipFile, limit: int) -> None:
        self.source = source
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.source.read(min(len(buffer), CHUNK))
        self.count += len(chunk)
        if self.count > self.limit:
            raise Unreadable(f"The archive unpacks to more than {self.limit} bytes.")
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _untar(data: bytes, writer: _Writer) -> None:
    # The files, plus room for tar's headers and padding (a few blocks per entry).
    limit = writer.limits.max_bytes + 2048 * (writer.limits.max_entries + 2)
    inflated = _Bounded(gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb"), limit)
    try:
        # A stream: members are read (and decompressed) one after the other as they
        # are reached, so a bomb is stopped by the byte count, not inflated first.
        with tarfile.open(fileobj=io.BufferedReader(inflated, CHUNK), mode="r|") as archive:
            for member in archive:
                if member.issym() or member.islnk():
                    raise Unreadable(
                        f"The archive's entry {member.name[:100]!r} is a "
                        "link; only files and folders are accepted."
                    )
                if not (member.isfile() or member.isdir()):
                    raise Unreadable(
                        f"The archive's entry {member.name[:100]!r} is a "
                        "device, fifo or other special file; only files and "
                        "folders are accepted."
                    )
                path = writer.target(member.name)
                if path is None:
                    continue
                if member.isdir():
                    writer.folder(path)
                    continue
                source = archive.extractfile(member)
                if source is None:
                    raise Unreadable(f"The archive's entry {member.name[:100]!r} cannot be read.")
                writer.file(path, source)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise Unreadable(f"The bundle is not a readable .tar.gz ({exc}).") from None
