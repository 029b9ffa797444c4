"""Signing in to the pages with a token in a cookie, and the checks every page makes.

The JSON API keeps its `Authorization: Bearer` header; only the pages read the cookie
(HttpOnly, SameSite=Strict). State-changing requests under /ui must come from this site:
the Origin and Sec-Fetch-Site headers are checked as well.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.services.access import Membership, course_member, require_staff, user_for
from api.ui.render import error_page, render
from core.accounts import user_for_token
from core.db import get_sessionmaker
from core.errors import DomainError, Forbidden, NotSignedIn
from core.models import User

COOKIE = "ag_session"
COOKIE_MAX_AGE = 7 * 24 * 3600
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,512}")
NOT_SIGNED_IN = "You are not signed in: sign in at /ui/login first."

router = APIRouter()


class SignInRequired(Exception):
    """The page needs a signed-in user; the browser is sent to the sign-in form."""


def cookie_token(request: Request) -> str | None:
    token = request.cookies.get(COOKIE, "")
    return token if _TOKEN_RE.fullmatch(token) else None


def page_user(request: Request, db: Session) -> User:
    """The signed-in user of a page (SignInRequired: off to the sign-in form)."""
    token = cookie_token(request)
    user = user_for_token(db, token) if token else None
    if user is None:
        raise SignInRequired()
    return user


def cookie_user(request: Request, db: Session) -> User:
    """The signed-in user of an endpoint that answers JSON or a stream (401 otherwise)."""
    token = cookie_token(request)
    if token is None:
        raise NotSignedIn(NOT_SIGNED_IN)
    return user_for(db, token, where="cookie")


def page_member(request: Request, db: Session, course: str) -> Membership:
    return course_member(db, page_user(request, db), course)


def staff_member(request: Request, db: Session, course: str) -> Membership:
    member = page_member(request, db, course)
    require_staff(member, "see this page")
    return member


def same_site(request: Request) -> None:
    """Refuse a state-changing request that another site made the browser send."""
    refusal = Forbidden("This request must come from the autograder's own pages.")
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise refusal
    origin = request.headers.get("origin")
    if origin == "null":
        raise refusal
    if origin is not None:
        here = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
        if origin.rstrip("/") != here:
            raise refusal


def safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/ui/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/ui/"
    return target


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", 303)


def html_page(func: Callable[..., Response]) -> Callable[..., Response]:
    """Errors of a page become a page (not JSON); no cookie sends the browser to sign in."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        request: Request = kwargs["request"]
        try:
            return func(*args, **kwargs)
        except SignInRequired:
            return login_redirect(request)
        except DomainError as exc:
            return error_page(request, exc.status, exc.message, exc.headers)

    return wrapper


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", 303)


@router.get("/ui/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", next=safe_next(next), error=None)


def _user_name_for_token(token: str) -> str | None:
    with get_sessionmaker()() as session:
        user = user_for_token(session, token)
        return user.name if user else None


@router.post("/ui/login")
async def login(request: Request) -> Response:
    same_site(request)
    try:
        form = await request.form(max_files=0, max_fields=5, max_part_size=4096)
    except Exception:
        form = None
    token = str(form.get("token", "")).strip() if form is not None else ""
    target = safe_next(str(form.get("next", "")) if form is not None else "")
    user = None
    if _TOKEN_RE.fullmatch(token):
        user = await run_in_threadpool(_user_name_for_token, token)
    if user is None:
        return render(
            request,
            "login.html",
            status_code=401,
            next=target,
            error="That token is not valid (unknown or revoked). Copy it again "
            "from the output of `autograder user add` or `make up`.",
        )
    response = RedirectResponse(target, 303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/ui/logout")
def logout(request: Request) -> RedirectResponse:
    same_site(request)
    response = RedirectResponse("/ui/login", 303)
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response
