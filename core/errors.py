"""The errors of the domain: what a service refuses, and why, in a sentence.

Services (api/services, core) raise these; they know nothing of HTTP. The API maps
each class to one status code in one exception handler (api/errors.py), and answers
``{"detail": <the sentence>}``. Headers that belong to the refusal (Retry-After after
a cap, WWW-Authenticate when no token was sent) travel with the error.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a sentence for the person who asked."""

    #: The HTTP status the API answers with (kept here so the mapping is one table).
    status = 400

    def __init__(
        self,
        message: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        message = " ".join(message.split())
        if message and message[-1] not in ".?!":
            message += "."
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})
        #: More fields of the answer beside `detail` (a refused publish's report).
        self.extra = dict(extra or {})

    def __str__(self) -> str:
        return self.message


class NotSignedIn(DomainError):
    """No token, or one that is not valid."""

    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Timeout(DomainError):
    """The client took too long to send its request."""

    status = 408


class TooLarge(DomainError):
    status = 413


class Unreadable(DomainError):
    """The request or its file cannot be used: wrong kind, malformed, over a limit of
    its content (nesting depth, cells, tensors)."""

    status = 422


class OverCap(DomainError):
    """Over a submission cap (or another rate)."""

    status = 429


class Unavailable(DomainError):
    """The service cannot take the request now; nothing was changed."""

    status = 503

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
