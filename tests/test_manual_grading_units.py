"""Manual grading without servers: the rubric of assignment.toml (validated with
sentences), the score rule, reading tagged cells from a hostile notebook, and the
renderer that must leave nothing active in a student's answer."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from api.services.manual.answers import MAX_OUTPUTS, Answer, AnswerCell, Output, tagged_cells
from api.services.manual.render import MAX_HTML_CHARS, MAX_IMAGE_BYTES, render_answer
from graders.course import CourseError, load_assignment_meta
from graders.intake_limits import IntakeError
from graders.rubric import RubricError, clamp_score, parse_rubric
from tests.support.paths import REFERENCE

pytestmark = pytest.mark.fast
SLUG = "saliency-discussion"
HW2 = REFERENCE / "hw2-interpretability"
PNG_1PX = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
    "RU5ErkJggg=="
)


def notebook(*cells: dict[str, Any]) -> bytes:
    return json.dumps(
        {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)}
    ).encode()


def md(source: str, tags: tuple[str, ...] = (SLUG,)) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {"tags": list(tags)}, "source": source}


def code(
    source: str, outputs: list[dict[str, Any]], tags: tuple[str, ...] = (SLUG,)
) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "metadata": {"tags": list(tags)},
        "source": source,
        "outputs": outputs,
        "execution_count": 1,
    }


def image_output(data: str, mime: str = "image/png") -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {}, "data": {mime: data}}


HOSTILE_MARKDOWN = (
    "# Analysis <script>alert('md')</script>\n\n"
    "<img src=x onerror=\"alert('img')\">\n\n"
    "[click me](javascript:alert('link')) and [ok](https://example.org/page)\n\n"
    '<a href="javascript:alert(2)" onclick="alert(3)">raw</a>\n\n'
    "![remote](https://tracker.example/pixel.png)\n\n"
    '<iframe src="https://evil.example"></iframe><style>body{display:none}</style>\n\n'
    "<svg onload=alert(4)><circle/></svg>\n"
)


def hostile_notebook(image_bytes: int = 5_000_000) -> bytes:
    big = base64.b64encode(b"\x89PNG" + b"\0" * (image_bytes - 4)).decode()
    return notebook(
        md("# not an answer", tags=()),
        md(HOSTILE_MARKDOWN),
        code(
            "print('<b onmouseover=alert(5)>hi</b>')",
            [
                {"output_type": "stream", "name": "stdout", "text": "<script>alert(6)</script>"},
                image_output(big),
                image_output(PNG_1PX),
                image_output("PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+", "image/svg+xml"),
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {"text/html": "<script>alert(7)</script>", "text/plain": "plain"},
                },
            ],
        ),
    )


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


def assert_inert(html: str) -> None:
    """Nothing in the HTML runs or fetches, judged on the elements a browser would build:
    no script/style/iframe/svg element, no event handler or style attribute, links only
    to http(s) or mail, every src a data:image URI."""
    parser = _Elements()
    parser.feed(html)
    parser.close()
    assert parser.found
    for tag, attrs in parser.found:
        assert tag not in {
            "script",
            "style",
            "iframe",
            "object",
            "embed",
            "svg",
            "math",
            "link",
            "meta",
            "base",
            "form",
        }, tag
        for name, value in attrs.items():
            assert not name.startswith("on") and name != "style", (tag, name)
            if name == "href":
                assert value.startswith(("https://", "http://", "mailto:")), value
            if name == "src":
                assert value.startswith(
                    ("data:image/png;base64,", "data:image/jpeg;base64,", "data:image/gif;base64,")
                ), value[:80]


def test_hostile_answer_renders_inert_and_within_the_caps() -> None:
    answer = tagged_cells(hostile_notebook(), SLUG)
    assert [c.cell_type for c in answer.cells] == ["markdown", "code"]  # untagged cell left
    rendered = render_answer(answer, SLUG)
    assert_inert(rendered.html)
    assert len(rendered.html) < MAX_HTML_CHARS
    # The 5 MB image is left out with its size; the 1-pixel one is shown inline.
    assert "An image of 5.0 MB was left out" in rendered.html
    assert f'src="data:image/png;base64,{PNG_1PX}"' in rendered.html
    # Text is kept as text (escaped), links to the web stay but lose nothing else.
    assert "&lt;script&gt;alert(6)&lt;/script&gt;" in rendered.html
    assert 'href="https://example.org/page"' in rendered.html
    assert "tracker.example" not in rendered.html  # a remote image is never fetched
    assert "plain" in rendered.html and "alert(7)" not in rendered.html


def test_many_cells_past_the_html_cap_are_left_out_with_a_sentence() -> None:
    image = base64.b64encode(b"\0" * (MAX_IMAGE_BYTES - 10)).decode()
    cells = tuple(
        AnswerCell(i, "code", "x", (Output("image", mime="image/png", data=image),))
        for i in range(10)
    )
    rendered = render_answer(Answer(cells), SLUG)
    assert len(rendered.html) <= MAX_HTML_CHARS + 500
    assert rendered.cells_left_out > 0 and rendered.cells + rendered.cells_left_out == 10
    assert f"{rendered.cells_left_out} more cell(s) were left out" in rendered.html


def test_tagged_cells_are_bounded() -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    with pytest.raises(IntakeError, match="nested too deeply"):
        tagged_cells(notebook(md("a"), {"cell_type": "raw", "metadata": {}, "source": deep}), SLUG)
    with pytest.raises(IntakeError, match="cells"):
        tagged_cells(notebook(*[md("a", tags=()) for _ in range(2001)]), SLUG)
    with pytest.raises(IntakeError, match="too long"):
        tagged_cells(notebook(*[md("y" * 600_000) for _ in range(4)]), SLUG)
    many = tagged_cells(notebook(code("p", [{"output_type": "stream", "text": "o"}] * 500)), SLUG)
    assert len(many.cells[0].outputs) == MAX_OUTPUTS
    with pytest.raises(IntakeError):
        tagged_cells(b"\xff\xfe not text", SLUG)
    # Tags that are not a list of strings, cells that are not objects: ignored, not a crash.
    odd = tagged_cells(
        notebook({"cell_type": "markdown", "metadata": {"tags": "x"}, "source": "a"}, md("kept")),
        SLUG,
    )
    assert [c.source for c in odd.cells] == ["kept"]


def test_answer_hash_covers_sources_and_outputs_only_of_tagged_cells() -> None:
    base = tagged_cells(notebook(md("answer"), code("c", [image_output(PNG_1PX)])), SLUG)
    same = tagged_cells(
        notebook(md("other, untagged", tags=()), md("answer"), code("c", [image_output(PNG_1PX)])),
        SLUG,
    )
    edited = tagged_cells(notebook(md("answer!"), code("c", [image_output(PNG_1PX)])), SLUG)
    replot = tagged_cells(notebook(md("answer"), code("c", [])), SLUG)
    assert base.sha256 == same.sha256
    assert len({base.sha256, edited.sha256, replot.sha256}) == 3


def test_score_rule_clamps_to_floor_and_ceiling() -> None:
    assert clamp_score([1, 1], 0.5, 0, 3) == 2.5
    assert clamp_score([1, 1, 1], 1, 0, 3) == 3
    assert clamp_score([-0.5], -2, 0, 3) == 0
    assert clamp_score([-0.5], 0, -1, 3) == -0.5


def test_hw2_declares_the_manual_exercise_and_its_rubric() -> None:
    meta = load_assignment_meta(HW2)
    manual = {e.slug: e for e in meta.exercises}[SLUG]
    assert manual.kind == "manual" and manual.points == 3 and meta.max_score == 13
    assert manual.rubric is not None
    assert (manual.rubric.floor, manual.rubric.ceiling) == (0, 3)
    ids = [i.id for i in manual.rubric.items]
    assert {"resolution", "predicted-class", "failure-case"} <= set(ids)
    assert any(i.points < 0 for i in manual.rubric.items)
    # The solution's discussion and plot are tagged; the starter has the question cell.
    for which, kinds in (("solution", ["code", "markdown"]), ("starter", ["code", "markdown"])):
        cells = tagged_cells((HW2 / "notebooks" / f"{which}.ipynb").read_bytes(), SLUG).cells
        assert [c.cell_type for c in cells] == kinds
    solution = tagged_cells((HW2 / "notebooks" / "solution.ipynb").read_bytes(), SLUG)
    assert any(o.mime == "image/png" for c in solution.cells for o in c.outputs)
    assert "resolution" in solution.cells[-1].source.lower()


@pytest.mark.parametrize(
    ("rubric", "sentence"),
    [
        (None, "has no rubric"),
        ({"items": []}, "has no items"),
        ({"items": [{"id": "a", "points": 1}, {"id": "a", "points": 2}]}, "appears twice"),
        ({"items": [{"id": "a", "points": "one"}]}, "must be a number"),
        ({"items": [{"id": "a", "points": 1e308 * 10}]}, "finite number"),
        ({"items": [{"id": "bad id!", "points": 1}]}, "must be 1 to 64 letters"),
        ({"floor": 2, "ceiling": 1, "items": [{"id": "a", "points": 1}]}, "above its ceiling"),
        ({"items": [{"id": "a", "points": 1, "colour": "red"}]}, "unknown keys"),
        ({"items": [{"id": f"i{n}", "points": 1} for n in range(51)]}, "at most 50 items"),
    ],
)
def test_a_bad_rubric_is_refused_at_load_with_a_sentence(
    tmp_path: Path, rubric: dict[str, Any] | None, sentence: str
) -> None:
    folder = tmp_path / "hw"
    shutil.copytree(HW2, folder)
    toml = (folder / "assignment.toml").read_text()
    head = toml[: toml.index("[exercises.rubric]")]
    if rubric is not None:
        head += "[exercises.rubric]\n" + _toml_table(rubric)
    (folder / "assignment.toml").write_text(head)
    with pytest.raises(CourseError, match=re.escape(sentence)) as caught:
        load_assignment_meta(folder)
    assert "assignment.toml" in str(caught.value) and SLUG in str(caught.value)


def _toml_table(rubric: dict[str, Any]) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in rubric.items() if k != "items"]
    for item in rubric.get("items", []):
        lines.append("[[exercises.rubric.items]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
    if not rubric.get("items") and "items" in rubric:
        lines.insert(0, "items = []")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, float) and value == float("inf"):
        return "inf"
    return json.dumps(value)


def test_only_manual_exercises_have_a_rubric(tmp_path: Path) -> None:
    folder = tmp_path / "hw"
    shutil.copytree(HW2, folder)
    toml = (folder / "assignment.toml").read_text()
    toml = toml.replace(
        'slug = "fgsm"\nkind = "function"\npoints = 3\n',
        'slug = "fgsm"\nkind = "function"\npoints = 3\n[exercises.rubric]\nitems = []\n',
    )
    (folder / "assignment.toml").write_text(toml)
    with pytest.raises(CourseError, match="only manual exercises have a rubric"):
        load_assignment_meta(folder)
    with pytest.raises(RubricError):
        parse_rubric("not a table", 3)
