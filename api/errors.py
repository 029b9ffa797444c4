"""One place where refusals become HTTP answers, and where the OpenAPI document learns
every status code an operation can answer.

- core.errors.DomainError (raised by the services) -> its status and `{"detail": sentence}`;
- request validation -> 422 `{"detail": "The request is not valid: ..."}`;
- a database error about the data (a NUL in a string, a value too long) -> 422; a
  constraint -> 409; any other database error -> 503 with Retry-After (an outage);
- Starlette's own 404 and 405 (no such route, wrong method) -> the same body; a 405's
  `Allow` lists every method of the path, whichever route matched first.

The error schema is one for all: `ErrorOut` `{"detail": string}`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import DomainError

log = logging.getLogger("autograder.api")

DESCRIPTIONS = {
    400: "The request could not be read.",
    401: "No token, or one that is not valid (unknown or revoked).",
    403: "Signed in, but not allowed: not enrolled, or not staff of the course.",
    404: "No such course, assignment, submission, batch or user (or not yours to see).",
    405: "The path does not take this method; `Allow` lists the ones it takes.",
    408: "The upload stopped arriving, or took too long.",
    409: "The change conflicts with what is stored.",
    413: "The file is larger than the limit.",
    422: "The request or its file cannot be used; the sentence says why.",
    429: "Over the assignment's submission cap.",
    503: "The service is busy or its database is away; nothing was changed. See Retry-After.",
}
#: Answered by any operation: the in-flight limit and the database being away.
EVERYWHERE = (503,)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route for the error codes it can answer."""
    from api.schemas import ErrorOut

    return {code: {"model": ErrorOut, "description": DESCRIPTIONS[code]} for code in codes}


def _validation_sentence(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "The request is not valid: " + "; ".join(parts) + "."


def allowed_methods(app: FastAPI, path: str) -> list[str] | None:
    """Every method the OpenAPI document gives `path` (None: not a documented path)."""
    table = getattr(app.state, "method_table", None)
    if table is None:
        table = []
        for template, item in app.openapi().get("paths", {}).items():
            pattern = re.escape(template)
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", pattern)
            table.append((re.compile(f"^{pattern}$"), sorted(m.upper() for m in item)))
        app.state.method_table = table
    found = [methods for regex, methods in table if regex.match(path)]
    return sorted({m for methods in found for m in methods}) if found else None


def detail(status: int, sentence: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": sentence}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        if exc.extra:
            return JSONResponse(
                {"detail": exc.message, **exc.extra},
                status_code=exc.status,
                headers=exc.headers or None,
            )
        return detail(exc.status, exc.message, exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return detail(422, _validation_sentence(exc))

    @app.exception_handler(DBAPIError)
    async def database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if isinstance(exc, DataError):
            log.info("database refused a value: %s", exc.orig)
            return detail(
                422,
                "The request holds a value the database cannot store (for "
                "example a NUL character, or text that is too long); nothing "
                "was changed.",
            )
        if isinstance(exc, IntegrityError):
            log.info("constraint: %s", exc.orig)
            return detail(409, "The change conflicts with what is stored; nothing was changed.")
        log.warning("database error: %s", exc)
        return detail(
            503,
            "The database is not reachable right now; nothing was changed. "
            "Please try again in a minute.",
            {"Retry-After": "10"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            methods = allowed_methods(app, request.url.path) or [
                m.strip() for m in headers.get("Allow", "").split(",") if m.strip()
            ]
            headers["Allow"] = ", ".join(methods)
            return detail(
                405,
                f"{request.method} is not a method of {request.url.path}; "
                f"it takes {', '.join(methods)}.",
                headers,
            )
        if exc.status_code == 400:  # FastAPI could not decode the JSON body
            return detail(
                422,
                "The request body could not be read: it is not valid JSON "
                "(send a JSON object with Content-Type: application/json).",
            )
        if exc.status_code == 404:
            return detail(404, f"There is nothing at {request.url.path[:200]}.", headers)
        sentence = str(exc.detail)
        return detail(
            exc.status_code, sentence if sentence.endswith(".") else sentence + ".", headers or None
        )

    app.openapi = lambda: honest_openapi(app)  # type: ignore[method-assign]


def honest_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the error answers as they are: every code declared
    with `ErrorOut`, 422 included (not FastAPI's list of validation errors)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, routes=app.routes, description=app.description
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["ErrorOut"] = {
        "title": "ErrorOut",
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"title": "Detail", "type": "string"}},
        "additionalProperties": True,
    }
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    open_paths: set[str] = getattr(app.state, "open_paths", set())
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            codes = set(EVERYWHERE)
            if path not in open_paths:
                codes.add(401)
                operation["security"] = [{"bearer": []}]
            if operation.get("parameters") or operation.get("requestBody"):
                codes.add(422)
            for code in codes:
                responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
            for code, response in responses.items():
                if not (code.isdigit() and int(code) >= 400):
                    continue
                if int(code) == 422:
                    response["description"] = DESCRIPTIONS[422]
                if int(code) == 422 or "content" not in response:
                    response["content"] = error_content
    app.openapi_schema = schema
    return schema
