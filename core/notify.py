"""A job's status changed: say so to the API processes, whose event streams wait on it.

Publishers (core/jobs.py: claim, finish, retry, the sweeper) call `job_changed` inside
the transaction that changes the status, before its commit:
- PostgreSQL (distributed): `pg_notify` in that transaction, so the notification is
  delivered at the commit (never before the new status can be read) and dropped with
  a rollback; each API process LISTENs on one connection of its own (`listen_postgres`).
- SQLite (embedded; the worker is a process of its own): after the commit, a datagram
  with the submission's id to each API process's socket in `<data dir>/notify/`
  (`listen_sockets` binds one per process). A socket whose process is gone refuses
  the datagram and is removed.

A notification may still be lost (a listener reconnecting, a full socket buffer): the
streams keep a slow safety poll (api/services/events.py), so none waits for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "autograder_status"
#: The longest path of a unix socket (sun_path is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107
PENDING = "notify_pending"
MAX_PAYLOAD = 64  # submission ids are 32 hex digits; anything longer is not ours

Wake = Callable[[str], None]


_NOTIFY = text("SELECT pg_notify(:channel, :id)")


def job_changed(session: Session, submission_id: str) -> None:
    """Announce, with the transaction's commit, that a job of `submission_id` changed."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_NOTIFY, {"channel": CHANNEL, "id": submission_id})
        return
    pending: set[str] | None = session.info.get(PENDING)
    if pending is None:
        pending = session.info[PENDING] = set()
        event.listen(session, "after_commit", _send_pending)
        event.listen(session, "after_rollback", _drop_pending)
    pending.add(submission_id)


def job_changed_on(conn: Connection, submission_id: str) -> None:
    """`job_changed` on a Core connection, inside its transaction: PostgreSQL delivers
    the NOTIFY with the commit. The embedded mode's datagram is `job_changed_after`'s."""
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"channel": CHANNEL, "id": submission_id})


def job_changed_after(conn: Connection, submission_id: str) -> None:
    """After the commit of a transaction that called `job_changed_on`."""
    if conn.dialect.name != "postgresql":
        send_datagrams(socket_folder(), [submission_id])


def _send_pending(session: Session) -> None:
    ids = session.info.get(PENDING)
    if ids:
        sent = sorted(ids)
        ids.clear()
        send_datagrams(socket_folder(), sent)


def _drop_pending(session: Session) -> None:
    ids = session.info.get(PENDING)
    if ids:
        ids.clear()


# -- the embedded mode's sockets ----------------------------------------------------------


def socket_folder() -> Path:
    from core.settings import get_settings

    return get_settings().resolved_data_dir / "notify"


_sender: socket.socket | None = None


def send_datagrams(folder: Path, submission_ids: list[str]) -> int:
    """One datagram per id to each listening socket in `folder`; never raises (the
    status is committed: a lost notification only waits for the safety poll)."""
    global _sender
    try:
        targets = [entry.path for entry in os.scandir(folder) if entry.name.endswith(".sock")]
    except OSError:
        return 0
    if not targets:
        return 0
    if _sender is None:
        _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        _sender.setblocking(False)
    sent = 0
    for path in targets:
        for submission_id in submission_ids:
            try:
                _sender.sendto(submission_id.encode(), path)
                sent += 1
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):  # its process is gone
                    os.unlink(path)
                break
            except OSError as exc:  # a full buffer (BlockingIOError) and the like
                log.debug("notification to %s dropped: %s", path, exc)
                break
    return sent


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, wake: Wake) -> None:
        self.wake = wake

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if 0 < len(data) <= MAX_PAYLOAD:
            self.wake(data.decode("ascii", "replace"))


def bind_socket(folder: Path, fallback: str) -> tuple[socket.socket, Path] | None:
    """This process's datagram socket in `folder` (`<pid>-<token>.sock`, non-blocking),
    or None, with a warning that names `fallback`, where it cannot be made (a path too
    long for a unix socket, a folder it cannot write)."""
    path = folder / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
    if len(str(path)) > MAX_SOCKET_PATH:
        log.warning("%s is too long for a unix socket; %s", path, fallback)
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
    except OSError as exc:
        log.warning("no socket at %s (%s); %s", path, exc, fallback)
        return None
    sock.setblocking(False)
    return sock, path


async def listen_sockets(folder: Path, wake: Wake, stopped: asyncio.Event) -> None:
    """Receive the embedded mode's datagrams until `stopped`; the socket is removed."""
    bound = bind_socket(folder, "event streams fall back to the safety poll")
    if bound is None:
        await stopped.wait()
        return
    sock, path = bound
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Datagrams(wake), sock=sock
    )
    try:
        await stopped.wait()
    finally:
        transport.close()
        with contextlib.suppress(OSError):
            path.unlink()


# -- PostgreSQL -----------------------------------------------------------------------------


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL of the settings as psycopg takes it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen_postgres(
    database_url: str,
    wake: Wake,
    on_connect: Callable[[], None],
    stopped: asyncio.Event,
    retry_seconds: float = 1.0,
) -> None:
    """LISTEN on one connection until `stopped`, reconnecting after a failure.
    `on_connect` runs after each (re)connection: what was missed meanwhile is read by
    the streams again."""
    import psycopg

    url = libpq_url(database_url)
    while not stopped.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=5
            ) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                on_connect()
                await _until(stopped, _drain(conn, wake))
        except (psycopg.Error, OSError) as exc:
            log.warning(
                "event streams: the database listener lost its connection (%s); retrying in %g s",
                str(exc).splitlines()[0] if str(exc) else exc,
                retry_seconds,
            )
        if not stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), retry_seconds)


async def _drain(conn: Any, wake: Wake) -> None:
    async for note in conn.notifies():
        if 0 < len(note.payload) <= MAX_PAYLOAD:
            wake(note.payload)


async def _until(stopped: asyncio.Event, work: Awaitable[None]) -> None:
    """Run `work` until it ends or `stopped` is set."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopped.wait())
    try:
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # its error, if any
    finally:
        for pending in (task, stop):
            pending.cancel()
        await asyncio.gather(task, stop, return_exceptions=True)
