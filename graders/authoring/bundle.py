"""An assignment folder as one deterministic .tar.gz, and back (for publishing).

`pack(folder)` gives the same bytes for the same files, wherever and whenever it runs,
and the same bytes as the service's own bundles (core.bundles.build_bundle): the files
graders.course.folder_version hashes (all but `__pycache__` and `*.pyc`), sorted, each
after the folders above it, mode 0644 (0755 for folders), owner 0:0 without names,
time 0, gzip level 6 without a name or time. A symbolic link is refused rather than
followed. `unpack(data, folder)` accepts only what `pack` writes: relative paths without
`..`, files and folders, within size limits.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path, PurePosixPath

from graders.authoring.plan import AuthoringError

MAX_BYTES = 64 * 1024 * 1024
MAX_FILES = 10_000


def members(folder: Path) -> list[Path]:
    """The folder's files that go into the bundle, sorted (as folder_version sorts them)."""
    if not folder.is_dir():
        raise AuthoringError(f"{folder} is not a folder")
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if "__pycache__" in relative.parts or path.suffix == ".pyc":
            continue
        if path.is_symlink():
            raise AuthoringError(f"{relative} is a symbolic link; a bundle holds plain files")
        if path.is_file():
            found.append(relative)
        elif not path.is_dir():
            raise AuthoringError(f"{relative} is neither a file nor a folder")
    return found


def _info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def pack(folder: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """A deterministic .tar.gz of an assignment folder."""
    raw = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders: set[str] = set()
        for relative in members(folder):
            for parent in reversed(relative.parents[:-1]):
                if parent.as_posix() not in folders:
                    folders.add(parent.as_posix())
                    tar.addfile(_info(parent.as_posix(), tarfile.DIRTYPE, 0o755, 0))
            data = (folder / relative).read_bytes()
            total += len(data)
            if total > max_bytes:
                raise AuthoringError(f"{folder} holds more than {max_bytes} bytes")
            tar.addfile(
                _info(relative.as_posix(), tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data)
            )
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def unpack(
    data: bytes, folder: Path, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES
) -> list[str]:
    """Write a bundle's files under `folder` (created, must be empty); their paths."""
    if folder.exists() and any(folder.iterdir()):
        raise AuthoringError(f"{folder} is not empty")
    limit = max_bytes + 2048 * (max_files + 1)  # the files, and tar's headers and padding
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as gz:
            raw = gz.read(limit + 1)  # never more: a small bundle can unzip to gigabytes
    except (OSError, EOFError) as exc:
        raise AuthoringError(f"the bundle is not a .tar.gz: {exc}") from exc
    if len(raw) > limit or not raw:
        raise AuthoringError(f"the bundle is empty or holds more than {max_bytes} bytes")
    written: list[str] = []
    try:
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    except tarfile.TarError as exc:
        raise AuthoringError(f"the bundle is not a .tar.gz: {exc}") from exc
    with tar:
        entries = tar.getmembers()
        if len(entries) > max_files:
            raise AuthoringError(f"the bundle holds more than {max_files} entries")
        for info in entries:
            name = PurePosixPath(info.name)
            if name.is_absolute() or ".." in name.parts or not name.parts:
                raise AuthoringError(f"the bundle has an entry outside its folder: {info.name!r}")
            target = folder.joinpath(*name.parts)
            if info.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not info.isfile():
                raise AuthoringError(f"{info.name} is neither a file nor a folder")
            total = sum(e.size for e in entries if e.isfile())
            if total > max_bytes:
                raise AuthoringError(f"the bundle holds more than {max_bytes} bytes")
            if target.exists():
                raise AuthoringError(f"{info.name} appears twice in the bundle")
            source = tar.extractfile(info)
            assert source is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
            written.append(name.as_posix())
    return written
