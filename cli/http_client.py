"""The HTTP side of the command-line client: a thin client of docs/API.md with the
Bearer token, the API's error sentences raised as ClientError with the exit code the
commands end with (cli/client.py, cli/publish.py).

httpx is imported when a command talks to a server, not when the CLI starts.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

DEFAULT_SERVER = "http://127.0.0.1:8000"

OK, NOT_GRADED, USAGE, REFUSED, UNREACHABLE, GAVE_UP = 0, 1, 2, 3, 4, 5


class ClientError(Exception):
    """Ends the command with a sentence on stderr and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Api:
    """A thin client: Bearer token, the API's error sentences as ClientError."""

    def __init__(self, args: argparse.Namespace) -> None:
        import httpx

        self.server = (args.server or os.environ.get("AUTOGRADER_SERVER") or DEFAULT_SERVER).rstrip(
            "/"
        )
        token = args.token or os.environ.get("AUTOGRADER_TOKEN")
        if not token:
            raise ClientError(
                "no token: pass --token or set AUTOGRADER_TOKEN (staff create "
                "tokens with `autograder user add`).",
                USAGE,
            )
        if not self.server.startswith(("http://", "https://")):
            raise ClientError(
                f"the server must be an http:// or https:// URL, not {self.server!r}.", USAGE
            )
        self.http = httpx.Client(
            base_url=self.server,
            timeout=httpx.Timeout(60.0),
            headers={"Authorization": f"Bearer {token.strip()}", "User-Agent": "autograder-cli"},
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ClientError(
                f"the autograder at {self.server} did not answer in time ({type(exc).__name__}).",
                UNREACHABLE,
            ) from exc
        except httpx.HTTPError as exc:
            raise ClientError(
                f"cannot reach the autograder at {self.server}: {exc}.", UNREACHABLE
            ) from exc
        if response.status_code >= 400:
            raise ClientError(error_sentence(response), REFUSED)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def events(self, submission_id: str) -> Iterator[dict[str, Any]]:
        """The submission's status changes, from the server-sent event stream."""
        import httpx

        timeout = httpx.Timeout(30.0, read=30.0)
        with self.http.stream(
            "GET", f"/api/v1/submissions/{submission_id}/events", timeout=timeout
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise ClientError(error_sentence(response), REFUSED)
            event, data = "message", list[str]()
            for line in response.iter_lines():
                if line == "":
                    if data and event == "status":
                        yield json.loads("\n".join(data))
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())

    def close(self) -> None:
        self.http.close()


def error_sentence(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if response.status_code == 404 and detail == "Not Found":
        sentence = (
            f"this server has no endpoint {response.request.url.path} (is --server "
            "an autograder of this version?)"
        )
    elif isinstance(detail, str) and detail:
        sentence = detail
    else:
        sentence = response.text.strip()[:200] or response.reason_phrase
    return f"{sentence} (HTTP {response.status_code})"
