"""Receiving one file from a multipart form, bounded while it arrives.

The body is read from the ASGI stream chunk by chunk (with or without Content-Length,
chunked or not) and fed to python-multipart's streaming parser; nothing is spooled to
disk, and the bytes are counted as they come: past the limit the request is answered
413 at once, having read at most the limit plus one chunk. A declared Content-Length
over the limit is refused before a byte is read. A client that stops sending is cut
off after `upload_idle_seconds` without data (408), and a whole upload may last at most
`upload_total_seconds`, so a slow client cannot hold a permit of the in-flight limit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from api.settings import get_api_settings
from core.errors import DomainError, Timeout, TooLarge, Unreadable
from graders.intake_limits import IntakeTooLarge


def upload_body(name: str = "file", description: str = "") -> dict[str, Any]:
    """The OpenAPI `requestBody` of a route that reads one file with `receive_file`
    (FastAPI cannot see it: the body is streamed, not declared as a parameter)."""
    part: dict[str, Any] = {"type": "string", "format": "binary"}
    if description:
        part["description"] = description
    schema = {"type": "object", "required": [name], "properties": {name: part}}
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": schema}},
        }
    }


#: Room for the multipart framing (boundaries, part headers, a few small fields).
OVERHEAD = 64 * 1024
MAX_PARTS = 10
MAX_FIELD_BYTES = 4096


class ClientGone(DomainError):
    """The client closed the connection before its request was read (nobody to answer)."""

    status = 400


@dataclass
class Received:
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)
    fields: dict[str, str] = field(default_factory=dict)
    #: Bytes of the whole body read.
    body_bytes: int = 0


def _not_a_form(reason: str) -> Unreadable:
    return Unreadable(f"The request body is not a valid multipart form: {reason}.")


def _too_large(limit: int) -> TooLarge:
    return TooLarge(str(IntakeTooLarge(limit)))


class _FormReader:
    """python-multipart callbacks that keep the one wanted file and small fields."""

    def __init__(self, wanted: str, limit: int, example: str) -> None:
        self.wanted = wanted
        self.limit = limit
        self.example = example
        self.result = Received()
        self.parts = 0
        self.ended = False
        self.file_done = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._field = bytearray()

    # python-multipart calls these with (data, start, end) or no argument.
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise _not_a_form(f"it has more than {MAX_PARTS} parts")
        self._headers = {}
        self._name, self._is_file = None, False
        self._field = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field, self._header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition")
        if disposition is None:
            raise _not_a_form("a part has no Content-Disposition header")
        _, options = parse_options_header(disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == self.wanted:
            if self.result.filename is not None or self.file_done:
                raise Unreadable(f"Send one file only, in the form field '{self.wanted}'.")
            self._is_file = True
            raw = options.get(b"filename")
            self.result.filename = raw.decode("utf-8", "replace") if raw is not None else ""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            buffer = self.result.data
            buffer += data[start:end]
            if len(buffer) > self.limit:
                raise _too_large(self.limit)
        else:
            self._field += data[start:end]
            if len(self._field) > MAX_FIELD_BYTES:
                raise _not_a_form(
                    f"the field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes"
                )

    def on_part_end(self) -> None:
        if self._is_file:
            self.file_done = True
        elif self._name:
            self.result.fields[self._name] = self._field.decode("utf-8", "replace")
        self._is_file = False

    def on_end(self) -> None:
        self.ended = True

    def callbacks(self) -> dict[str, object]:
        return {
            name: getattr(self, name)
            for name in (
                "on_part_begin",
                "on_header_field",
                "on_header_value",
                "on_header_end",
                "on_headers_finished",
                "on_part_data",
                "on_part_end",
                "on_end",
            )
        }


async def receive_file(
    request: Request,
    limit: int,
    wanted: str = "file",
    example: str = "curl -F file=@homework.ipynb ...",
) -> Received:
    """The file of form field `wanted`, at most `limit` bytes; DomainError otherwise."""
    settings = get_api_settings()
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise Unreadable(
            f"Send the file as multipart/form-data, in a form field named '{wanted}' ({example})."
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + OVERHEAD:
        raise _too_large(limit)
    reader = _FormReader(wanted, limit, example)
    parser = MultipartParser(params[b"boundary"], reader.callbacks())  # type: ignore[arg-type]
    stream = request.stream().__aiter__()
    deadline = time.monotonic() + settings.upload_total_seconds
    received = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout(
                f"The upload took longer than {settings.upload_total_seconds:g} s; "
                "nothing was stored. Try again on a faster connection."
            )
        try:
            async with asyncio.timeout(min(settings.upload_idle_seconds, left)):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise Timeout(
                f"The upload stopped: no data arrived for "
                f"{settings.upload_idle_seconds:g} s (or it took longer than "
                f"{settings.upload_total_seconds:g} s in all); nothing was "
                "stored."
            ) from None
        except ClientDisconnect:
            raise ClientGone("The client disconnected before the upload was complete.") from None
        received += len(chunk)
        if received > limit + OVERHEAD:
            raise _too_large(limit)
        if chunk:
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise _not_a_form(str(exc).rstrip(".")) from None
        if reader.ended:
            break
    reader.result.body_bytes = received
    if reader.result.filename is None:
        raise Unreadable(f"Send the file as a multipart form field named '{wanted}' ({example}).")
    if not reader.file_done or not reader.ended:
        raise _not_a_form("it ended before its closing boundary")
    return reader.result


class CloseUnreadBodies:
    """An answer given before the request's body was read to its end (a 413 after the
    limit, a 401 before the upload, a 503 of the in-flight limit) says `Connection:
    close`: the server then closes the connection instead of reading, and throwing
    away, the rest of what the client sends (300 MB, or forever)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        done = False

        async def tracking_receive() -> Any:
            nonlocal done
            message = await receive()
            if message.get("type") == "http.request" and not message.get("more_body", False):
                done = True
            return message

        async def closing_send(message: Any) -> None:
            if message.get("type") == "http.response.start" and not done:
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracking_receive, closing_send)


def _has_body(scope: Any) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            return value.strip() not in (b"0", b"")
        if key == b"transfer-encoding":
            return True
    return False
