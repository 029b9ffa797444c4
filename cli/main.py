"""The `autograder` command: the service's pieces and the staff's tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def _course_check(args: argparse.Namespace) -> int:
    from cli.course_check import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    course = sub.add_parser("course", help="course authoring tools")
    course_sub = course.add_subparsers(dest="course_command", required=True)
    check = course_sub.add_parser(
        "check", help="grade an assignment's solution, starter, variants and alternatives"
    )
    check.add_argument("folders", nargs="+", help="assignment folders, e.g. reference/hw1-*")
    check.set_defaults(func=_course_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
