"""Staff commands on accounts: `autograder user add|revoke`."""

from __future__ import annotations

import argparse

from core.accounts import AccountError, add_user, revoke_tokens
from core.db import session_scope
from core.models import User


def cmd_user_add(args: argparse.Namespace) -> int:
    try:
        with session_scope() as session:
            token = add_user(
                session,
                args.name,
                args.role,
                args.course,
                full_name=args.full_name or "",
                email=args.email or "",
            )
    except AccountError as exc:
        print(f"error: {exc}")
        return 2
    print(f"user {args.name!r} is {args.role} in {args.course!r}; their token:")
    print(token)
    return 0


def cmd_user_revoke(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    with session_scope() as session:
        user = session.scalar(select(User).where(User.name == args.name))
        if user is None:
            print(f"error: there is no user {args.name!r}")
            return 2
        count = revoke_tokens(session, user)
    print(f"revoked {count} token(s) of {args.name!r}")
    return 0
