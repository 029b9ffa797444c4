"""A manual exercise's rubric: its items and score bounds, validated once for
assignment.toml (at course load) and for the API (a rubric replaced by staff).

An item has an id (a slug), points (positive or negative, finite) and a description.
The score of an answer is the sum of the applied items' points plus a free adjustment,
clamped to [floor, ceiling]; floor defaults to 0 and ceiling to the exercise's points.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_ITEMS = 50
MAX_DESCRIPTION = 2000
MAX_POINTS = 1000.0
ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class RubricError(ValueError):
    """The rubric is not valid; the message is a sentence saying why."""


@dataclass(frozen=True)
class RubricItemSpec:
    id: str
    points: float
    description: str


@dataclass(frozen=True)
class RubricSpec:
    items: tuple[RubricItemSpec, ...]
    floor: float
    ceiling: float

    @property
    def sha256(self) -> str:
        """A fingerprint of the rubric as declared (a course import compares it)."""
        body = json.dumps(
            [[i.id, i.points, i.description] for i in self.items] + [self.floor, self.ceiling]
        )
        return hashlib.sha256(body.encode()).hexdigest()


def finite_points(value: Any, what: str) -> float:
    """A number of points: finite, not a bool, within +-MAX_POINTS."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RubricError(f"{what} must be a number, not {type(value).__name__}.")
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_POINTS:
        raise RubricError(
            f"{what} must be a finite number between -{MAX_POINTS:g} and {MAX_POINTS:g}."
        )
    return number


def check_items(items: Sequence[RubricItemSpec]) -> tuple[RubricItemSpec, ...]:
    """The items, if their ids are well-formed and unique and their values bounded."""
    if len(items) > MAX_ITEMS:
        raise RubricError(f"A rubric has at most {MAX_ITEMS} items, not {len(items)}.")
    seen: set[str] = set()
    for item in items:
        if not isinstance(item.id, str) or not ITEM_ID.match(item.id):
            raise RubricError(
                f"Rubric item id {str(item.id)[:70]!r} must be 1 to 64 letters, "
                "digits, '_', '-' or '.', starting with a letter or digit."
            )
        if item.id in seen:
            raise RubricError(f"Rubric item id {item.id!r} appears twice; ids must be unique.")
        seen.add(item.id)
        finite_points(item.points, f"The points of rubric item {item.id!r}")
        if not isinstance(item.description, str) or len(item.description) > MAX_DESCRIPTION:
            raise RubricError(
                f"The description of rubric item {item.id!r} must be text of at "
                f"most {MAX_DESCRIPTION} characters."
            )
    return tuple(items)


def parse_rubric(raw: Any, points: float) -> RubricSpec:
    """The rubric of a manual exercise from its assignment.toml table, or RubricError.

    ``raw``: ``{"floor"?, "ceiling"?, "items": [{"id", "points", "description"}]}``.
    """
    if not isinstance(raw, dict):
        raise RubricError("the rubric must be a table with a list of [[...rubric.items]].")
    unknown = set(raw) - {"floor", "ceiling", "items"}
    if unknown:
        raise RubricError(
            f"the rubric has unknown keys {sorted(unknown)}; it takes floor, ceiling and items."
        )
    raw_items = raw.get("items", [])
    if not isinstance(raw_items, list) or not raw_items:
        raise RubricError(
            "the rubric has no items: add [[exercises.rubric.items]] with id, "
            "points and description."
        )
    items = []
    for entry in raw_items:
        if not isinstance(entry, dict) or not {"id", "points"} <= set(entry):
            raise RubricError("each rubric item needs an id and points (and a description).")
        extra = set(entry) - {"id", "points", "description"}
        if extra:
            raise RubricError(
                f"rubric item {str(entry['id'])[:64]!r} has unknown keys {sorted(extra)}."
            )
        items.append(RubricItemSpec(entry["id"], entry["points"], entry.get("description", "")))
    checked = check_items(items)
    floor = finite_points(raw.get("floor", 0.0), "The rubric's floor")
    ceiling = finite_points(raw.get("ceiling", points), "The rubric's ceiling")
    if floor > ceiling:
        raise RubricError(f"The rubric's floor ({floor:g}) is above its ceiling ({ceiling:g}).")
    return RubricSpec(
        tuple(RubricItemSpec(i.id, float(i.points), i.description) for i in checked), floor, ceiling
    )


def clamp_score(points: Iterable[float], adjustment: float, floor: float, ceiling: float) -> float:
    """clamp(sum of the applied items' points + adjustment, floor, ceiling)."""
    return round(min(max(math.fsum(points) + adjustment, floor), ceiling), 6)
