"""Frames: a 4-byte big-endian length, then one encoded document."""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from protocol.codec import DecodeError, decode, encode
from protocol.limits import DecodeLimits

HEADER = struct.Struct(">I")


class FrameTooLarge(ValueError):
    """An encoded value is over the frame size the reader accepts."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the value takes {size / 2**20:.1f} MB to send, over the limit "
            f"of {limit / 2**20:.1f} MB for one answer"
        )
        self.size = size
        self.limit = limit


def frame(message: Any, limit: int | None = None) -> bytes:
    """The frame for `message`; FrameTooLarge if its document is over `limit` bytes."""
    payload = encode(message)
    if limit is not None and len(payload) > limit:
        raise FrameTooLarge(len(payload), limit)
    return HEADER.pack(len(payload)) + payload


def write_frame(stream: BinaryIO, message: Any, limit: int | None = None) -> None:
    stream.write(frame(message, limit))
    stream.flush()


def read_exact(stream: BinaryIO, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO, limits: DecodeLimits) -> Any:
    """Read one frame; DecodeError if it is over the limits (nothing more is read)."""
    (size,) = HEADER.unpack(read_exact(stream, HEADER.size))
    if size > limits.max_frame_bytes:
        raise DecodeError(f"a frame of {size} bytes is over the limit of {limits.max_frame_bytes}")
    return decode(read_exact(stream, size), limits)
