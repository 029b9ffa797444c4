"""A structural check of a msgpack document, run before any object is built.

msgpack's own decoder bounds each container's length but neither the nesting depth
(extension payloads decode recursively, so deep nesting overflows the C stack) nor
the total number of objects (a few MB of empty lists become gigabytes of lists). This
walk reads only type bytes and lengths, iteratively, and refuses a document that
breaks a rule of `DecodeLimits`; nested documents inside the extension types that
carry msgpack (tuples, unsupported values) are walked as part of the same document.
"""

from __future__ import annotations

import struct

from protocol.limits import DecodeLimits

#: Extension codes whose payload is itself a msgpack document.
NESTED_EXTS = frozenset({2, 4})

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
# Fixed-size scalars: type byte -> bytes after it.
_SCALARS = {
    0xC0: 0,
    0xC2: 0,
    0xC3: 0,
    0xCA: 4,
    0xCB: 8,
    0xCC: 1,
    0xCD: 2,
    0xCE: 4,
    0xCF: 8,
    0xD0: 1,
    0xD1: 2,
    0xD2: 4,
    0xD3: 8,
}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


class ScanError(ValueError):
    """The document breaks a limit or is not msgpack; the message says which, in words."""


def check(data: bytes | memoryview, limits: DecodeLimits) -> None:
    """Raise ScanError unless `data` is one msgpack document within `limits`."""
    view = memoryview(data)
    end = len(view)
    pos = 0
    items = 0
    # Each entry: [objects still expected, end offset of a nested document or -1].
    stack: list[list[int]] = [[1, -1]]
    while stack:
        top = stack[-1]
        if top[0] == 0:
            stack.pop()
            if top[1] >= 0 and pos != top[1]:
                raise ScanError("an extension payload holds more than one value")
            continue
        top[0] -= 1
        items += 1
        if items > limits.max_items:
            raise ScanError(f"the reply holds more than {limits.max_items} values")
        if pos >= end:
            raise ScanError("the reply is truncated")
        byte = view[pos]
        pos += 1
        if byte <= 0x7F or byte >= 0xE0:
            continue
        count = -1  # container length (maps count pairs twice below)
        size = -1  # payload bytes to skip
        if 0x80 <= byte <= 0x8F:
            count = 2 * (byte & 0x0F)
        elif 0x90 <= byte <= 0x9F:
            count = byte & 0x0F
        elif 0xA0 <= byte <= 0xBF:
            size = byte & 0x1F
        elif byte in _SCALARS:
            size = _SCALARS[byte]
        elif byte in (0xC4, 0xD9):
            size, pos = _length(view, pos, 1)
        elif byte in (0xC5, 0xDA):
            size, pos = _length(view, pos, 2)
        elif byte in (0xC6, 0xDB):
            size, pos = _length(view, pos, 4)
        elif byte == 0xDC:
            count, pos = _length(view, pos, 2)
        elif byte == 0xDD:
            count, pos = _length(view, pos, 4)
        elif byte == 0xDE:
            count, pos = _length(view, pos, 2)
            count *= 2
        elif byte == 0xDF:
            count, pos = _length(view, pos, 4)
            count *= 2
        elif byte in _FIXEXT or byte in (0xC7, 0xC8, 0xC9):
            if byte in _FIXEXT:
                length = _FIXEXT[byte]
            else:
                length, pos = _length(view, pos, {0xC7: 1, 0xC8: 2, 0xC9: 4}[byte])
            if pos >= end:
                raise ScanError("the reply is truncated")
            code = view[pos]
            pos += 1
            if pos + length > end:
                raise ScanError("the reply is truncated")
            if code in NESTED_EXTS:
                if len(stack) >= limits.max_depth:
                    raise ScanError(f"the reply is nested deeper than {limits.max_depth} levels")
                items -= 1  # the nested document's value is this one, counted once
                stack.append([1, pos + length])
                continue
            pos += length
            continue
        else:
            raise ScanError(f"byte 0x{byte:02x} at offset {pos - 1} is not msgpack")
        if byte in (0xD9, 0xDA, 0xDB) or 0xA0 <= byte <= 0xBF:
            if size > limits.max_str_len:
                raise ScanError(f"a string of the reply is over {limits.max_str_len} bytes")
        if size >= 0:
            pos += size
            if pos > end:
                raise ScanError("the reply is truncated")
            continue
        if (
            count // (2 if byte in (0xDE, 0xDF) or 0x80 <= byte <= 0x8F else 1)
            > limits.max_container_len
        ):
            raise ScanError(
                f"a container of the reply holds more than {limits.max_container_len} values"
            )
        if count:
            if len(stack) >= limits.max_depth:
                raise ScanError(f"the reply is nested deeper than {limits.max_depth} levels")
            stack.append([count, -1])
    if pos != end:
        raise ScanError("the reply has bytes after its value")


def _length(view: memoryview, pos: int, width: int) -> tuple[int, int]:
    if pos + width > len(view):
        raise ScanError("the reply is truncated")
    if width == 1:
        return view[pos], pos + 1
    if width == 2:
        return _U16.unpack_from(view, pos)[0], pos + 2
    return _U32.unpack_from(view, pos)[0], pos + 4
