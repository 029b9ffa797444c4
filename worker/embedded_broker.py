"""The embedded broker: kombu's filesystem transport, made safe for concurrent use.

kombu's own `_put` creates the message file under its final name in the queue folder
and only then writes it, and its `_get` never takes the lock the writer holds: a
consumer that lists the folder in between moves and reads an empty or half-written
file, deletes it, and the JSONDecodeError kills the Celery worker ("Unrecoverable
error"; the message is lost too). The exchange table in the control folder has the
same gap when it is first created (empty file first, lock after).
Here a message is written in a staging folder beside the queue folder (same
filesystem) and `os.rename`d into the queue when complete, so a reader only ever
sees whole files (rename is atomic on POSIX); a consumer claims a file by renaming
it into a claim folder (exactly one of several consumers wins), and a file that
does not decode (another writer's partial file, or one left by a crash) is put back
while it is young and quarantined when old, never raised. Why this and not kombu's
SQLAlchemy transport on SQLite: the broker stays a folder of whole files that any
tool can look at, with no new dependency, and a few lines over kombu's own code.

A consumer does not sleep out kombu's polling interval between empty polls: it waits
on a unix datagram socket of its own in the `wake` folder beside the queues, and every
put sends one datagram to each socket there, so a message is picked up at once (the
poll stays, for a datagram that is lost).

Not covered, as with kombu's transport: a message a killed consumer had taken and
not yet handled is gone from the folder; the job sweeper (core/jobs.py) re-queues
or re-sends the job.

`install()` makes the URL ``filesystem://`` mean this transport in the calling process
(before its first connection): the worker (worker/celery_app.py) and the API
(`autograder serve`: cli/serve_app.py, in each of its processes) call it; `autograder
up` runs those two.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

from core.notify import bind_socket, send_datagrams

log = logging.getLogger("autograder.broker")

TRANSPORT_PATH = "worker.embedded_broker:Transport"
#: How long an undecodable message file may be someone's write in progress (put back
#: and tried again) before it counts as broken and is moved to the quarantine folder.
NOT_READY_GRACE_SECONDS = 10.0


def message_name(queue: str) -> str:
    """kombu's file name for a message of `queue`: `<ms>_<uuid>.<queue>.msg`.

    The time is zero-padded so that the name order (the delivery order) stays the
    sending order across a change in the number of digits.
    """
    return f"{int(round(time.monotonic() * 1000)):015d}_{uuid.uuid4()}.{queue}.msg"


def sibling_folder(options: Mapping[str, Any], option: str, base: str, name: str) -> Path:
    """The folder `options[option]`, else `name` beside the queue folder `base`; made."""
    given = options.get(option)
    folder = Path(given) if given else Path(base).resolve().parent / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Channel(filesystem.Channel):
    """Atomic puts, claim-by-rename gets, undecodable files never raised."""

    # -- folders: siblings of the queue folder unless given --------------------------
    def _sibling(self, option: str, base: str, name: str) -> str:
        return str(sibling_folder(self.transport_options, option, base, name))

    @cached_property
    def staging_folder(self) -> str:
        return self._sibling("staging_folder", self.data_folder_out, "staging")

    @cached_property
    def claim_folder(self) -> str:
        return self._sibling("claim_folder", self.data_folder_in, "claimed")

    @cached_property
    def quarantine_folder(self) -> str:
        return self._sibling("quarantine_folder", self.data_folder_in, "corrupt")

    @cached_property
    def wake_folder(self) -> str:
        return self._sibling("wake_folder", self.data_folder_out, "wake")

    # -- put ---------------------------------------------------------------------------
    # kombu's two base classes name the argument differently (message, payload).
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = message_name(queue)
        data = str_to_bytes(dumps(payload))
        staged = os.path.join(self.staging_folder, name)
        try:
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(staged, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            try:
                os.unlink(staged)
            except OSError:
                pass
            raise ChannelError(
                f"Cannot add message {name!r} to {self.data_folder_out!r}: {exc}"
            ) from exc
        send_datagrams(Path(self.wake_folder), [str(queue)])  # never raises

    # -- the exchange table in the control folder ----------------------------------------
    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        """kombu creates the table file empty and locks it after: a reader that comes in
        between (every publish reads it) decodes "". Create it whole, with a hard link
        that fails if it exists; existing tables are updated under kombu's lock."""
        file = self._exchange_file(exchange)  # type: ignore[no-untyped-call]
        if not file.exists():
            self.control_folder.mkdir(parents=True, exist_ok=True)
            row = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
            staged = os.path.join(self.staging_folder, f"{uuid.uuid4()}.exchange")
            try:
                with open(staged, "xb") as f:
                    f.write(str_to_bytes(dumps([row])))
                os.link(staged, file)
                return
            except FileExistsError:
                pass  # created meanwhile: add our row to it below, under the lock
            except OSError as exc:
                log.warning("cannot create %s atomically (%s); kombu's way then", file, exc)
            finally:
                try:
                    os.unlink(staged)
                except OSError:
                    pass
        super()._queue_bind(exchange, routing_key, pattern, queue)  # type: ignore[no-untyped-call]

    # -- get ---------------------------------------------------------------------------
    def _get(self, queue: Any, timeout: Any = None) -> Any:
        wanted = f"{queue}.msg"
        try:
            names = sorted(os.listdir(self.data_folder_in))
        except OSError as exc:
            raise ChannelError(f"Cannot list {self.data_folder_in!r}: {exc}") from exc
        for name in names:
            if name.partition(".")[2] != wanted:
                continue
            source = os.path.join(self.data_folder_in, name)
            claimed = os.path.join(self.claim_folder, name)
            try:
                os.rename(source, claimed)  # exactly one consumer wins a file
            except FileNotFoundError:
                continue  # another consumer took it
            except OSError as exc:
                raise ChannelError(f"Cannot claim message {source!r}: {exc}") from exc
            try:
                with open(claimed, "rb") as f:
                    raw = f.read()
            except OSError as exc:
                raise ChannelError(f"Cannot read message {claimed!r}: {exc}") from exc
            payload = _decode(raw)
            if payload is None:
                self._not_a_message(claimed, source, len(raw))
                continue
            self._done_with(claimed, name)
            return payload
        raise Empty()

    def _done_with(self, claimed: str, name: str) -> None:
        try:
            if self.store_processed:
                os.rename(claimed, os.path.join(self.processed_folder, name))
            else:
                os.unlink(claimed)
        except OSError as exc:  # delivered all the same; the file is only left over
            log.warning("could not remove the delivered message file %s: %s", claimed, exc)

    def _not_a_message(self, claimed: str, source: str, size: int) -> None:
        """A file that does not decode: someone's write in progress, or broken."""
        try:
            age = time.time() - os.stat(claimed).st_mtime
            if age < NOT_READY_GRACE_SECONDS:
                os.rename(claimed, source)  # not ready yet: back in its place, try later
                return
            target = os.path.join(self.quarantine_folder, os.path.basename(claimed))
            os.rename(claimed, target)
        except OSError as exc:
            log.warning("could not set aside the undecodable message file %s: %s", claimed, exc)
            return
        log.warning(
            "message file %s (%d bytes, %.0f s old) does not decode; moved to %s",
            os.path.basename(claimed),
            size,
            age,
            self.quarantine_folder,
        )


def _decode(raw: bytes) -> dict[str, Any] | None:
    """The message in a file, or None if the bytes are not one (yet)."""
    try:
        payload = loads(bytes_to_str(raw))
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("properties"), dict):
        return None
    return payload


class Waker:
    """This process's wake-up socket in the broker's `wake` folder (see above)."""

    def __init__(self, folder: Path) -> None:
        self.owner = os.getpid()
        self.sock: socket.socket | None = None
        self.path: Path | None = None
        bound = bind_socket(folder, "the broker's consumers poll only")
        if bound is not None:
            self.sock, self.path = bound

    def wait(self, seconds: float) -> None:
        """Until a datagram comes or `seconds` pass; then drop every datagram waiting."""
        if self.sock is None:
            time.sleep(seconds)
            return
        select.select([self.sock], [], [], seconds)
        with contextlib.suppress(OSError):  # BlockingIOError: none left
            while True:
                self.sock.recv(256)

    def close(self) -> None:
        if self.sock is not None and self.path is not None and self.owner == os.getpid():
            self.sock.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.sock = None


class Transport(filesystem.Transport):
    """kombu's filesystem transport with the Channel above, woken by puts."""

    Channel = Channel
    _waker: Waker | None = None

    def drain_events(self, connection: Any, timeout: float | None = None, **_: Any) -> None:
        """kombu's loop, with the sleep between empty polls a wait on the Waker."""
        cycle = self.cycle
        assert cycle is not None  # set up with the connection
        started = time.monotonic()
        interval = self.polling_interval
        if timeout and interval and interval > timeout:
            interval = timeout
        while True:
            try:
                cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise TimeoutError() from None
                if interval is not None:
                    self._wake_socket().wait(interval)

    def _wake_socket(self) -> Waker:
        if self._waker is None or self._waker.owner != os.getpid():
            options = self.client.transport_options if self.client is not None else {}
            queues = options.get("data_folder_in") or "."
            self._waker = Waker(sibling_folder(options, "wake_folder", queues, "wake"))
        return self._waker

    def close_connection(self, connection: Any) -> None:
        if self._waker is not None:
            self._waker.close()
            self._waker = None
        super().close_connection(connection)  # type: ignore[no-untyped-call]


def install() -> None:
    """From now on, in this process, ``filesystem://`` is this transport.

    Call it before the process's first broker connection (connections resolve the
    transport when they first need it; kombu caches the class by name).
    """
    from kombu import transport

    if transport.TRANSPORT_ALIASES.get("filesystem") != TRANSPORT_PATH:
        transport.TRANSPORT_ALIASES["filesystem"] = TRANSPORT_PATH
        transport._transport_cache.pop("filesystem", None)
