"""An answer's cells as HTML a grader's browser may show: Markdown rendered with
markdown-it-py (raw HTML off), code and its text outputs escaped, images from outputs
inline as data: URIs; then everything through nh3 (the Ammonia sanitiser) with an
allowlist: no script or style, no event handler, no URL but http(s)/mailto links and
data:image/{png,jpeg,gif} images, so nothing is fetched and nothing runs.

Bounded: an image over MAX_IMAGE_BYTES is replaced by a sentence giving its size, and
cells past MAX_HTML_CHARS of output by one saying how many were left out.
"""

from __future__ import annotations

import base64
import binascii
import html
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt

from api.services.manual.answers import IMAGE_TYPES, Answer, AnswerCell, Output

MAX_IMAGE_BYTES = 1_500_000
MAX_HTML_CHARS = 4_000_000

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")

_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "div": {"class"},
    "pre": {"class"},
    "p": {"class"},
    "span": {"class"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
}
_DATA_IMAGES = tuple(f"data:{mime};base64," for mime in IMAGE_TYPES)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Links go to http(s) or mail only; images come from data: URIs only (no fetch)."""
    if tag == "img" and attribute == "src":
        return value if value.startswith(_DATA_IMAGES) else None
    if tag == "a" and attribute == "href":
        return value if value.lower().startswith(("http://", "https://", "mailto:")) else None
    return value


_cleaner = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style", "iframe", "object", "svg", "math", "template"},
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    url_schemes={"http", "https", "mailto", "data"},
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def sanitize(fragment: str) -> str:
    return _cleaner.clean(fragment)


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.0f} KB"


def _image(output: Output) -> str:
    compact = "".join(output.data.split())
    # Decoded length without decoding the whole of a huge image first.
    size = len(compact) * 3 // 4
    if size > MAX_IMAGE_BYTES:
        return (
            f'<p class="answer-omitted">An image of {_size(size)} was left out: the limit '
            f"is {_size(MAX_IMAGE_BYTES)} per image.</p>"
        )
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return '<p class="answer-omitted">An image that is not valid base64 was left out.</p>'
    encoded = base64.b64encode(raw).decode("ascii")  # canonical: nothing but base64 chars
    src = f"data:{output.mime};base64,{encoded}"
    return f'<p class="answer-image"><img alt="output image" src="{src}"></p>'


def _output(output: Output) -> str:
    if output.kind == "image":
        return _image(output)
    css = "answer-error" if output.kind == "error" else "answer-output"
    return f'<pre class="{css}">{html.escape(output.text)}</pre>'


def _cell(cell: AnswerCell) -> str:
    if cell.cell_type == "markdown":
        body = _markdown.render(cell.source)
    elif cell.cell_type == "code":
        body = f'<pre class="answer-code"><code>{html.escape(cell.source)}</code></pre>' + "".join(
            _output(o) for o in cell.outputs
        )
    else:
        body = f'<pre class="answer-raw">{html.escape(cell.source)}</pre>'
    return sanitize(f'<div class="answer-cell answer-{cell.cell_type}">{body}</div>')


@dataclass(frozen=True)
class RenderedAnswer:
    html: str
    cells: int
    #: Cells left out because the HTML would pass MAX_HTML_CHARS.
    cells_left_out: int


def render_answer(answer: Answer, slug: str) -> RenderedAnswer:
    """The answer's cells as sanitised HTML, within MAX_HTML_CHARS."""
    if not answer.cells:
        note = answer.note or f"No cell of the notebook is tagged {slug!r}."
        return RenderedAnswer(f'<p class="answer-empty">{html.escape(note)}</p>', 0, 0)
    parts: list[str] = []
    size = 0
    for shown, cell in enumerate(answer.cells):
        rendered = _cell(cell)
        if size + len(rendered) > MAX_HTML_CHARS:
            left = len(answer.cells) - shown
            parts.append(
                f'<p class="answer-omitted">{left} more cell(s) were left out: the '
                f"answer passes the {_size(MAX_HTML_CHARS)} limit of a rendered "
                "answer.</p>"
            )
            return RenderedAnswer("".join(parts), shown, left)
        parts.append(rendered)
        size += len(rendered)
    return RenderedAnswer("".join(parts), len(answer.cells), 0)
