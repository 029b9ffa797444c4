"""A manual exercise's answer: the notebook's cells tagged with the exercise's slug
(Jupyter `metadata.tags`), read from the hostile file with bounds on everything.

The notebook was accepted by the intake (graders/intake.py) but only its code was
checked there; here its Markdown, outputs and tags are read too, under the same limits
(bytes, nesting, cell count, total source) and bounds of our own on outputs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from graders.intake_limits import API_LIMITS, IntakeError, Limits, load_json

#: Outputs read per tagged cell, and characters of text kept per output.
MAX_OUTPUTS = 50
MAX_OUTPUT_CHARS = 100_000
#: Tags read per cell; a longer list is ignored past this.
MAX_TAGS = 50
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Output:
    """One output of a code cell: text (stream, result, error) or an image."""

    kind: str  # text | error | image
    text: str = ""
    #: For images: the MIME type and the base64 data as the notebook holds it.
    mime: str = ""
    data: str = ""


@dataclass(frozen=True)
class AnswerCell:
    index: int  # 1-based position in the notebook
    cell_type: str  # markdown | code | raw
    source: str
    outputs: tuple[Output, ...] = ()


@dataclass(frozen=True)
class Answer:
    cells: tuple[AnswerCell, ...]
    #: Why there is no answer to read (a .py or model file), if so.
    note: str = ""

    @property
    def sha256(self) -> str:
        """The hash of the tagged cells' sources and outputs: equal hashes, same answer."""
        body = [
            [c.cell_type, c.source, [[o.kind, o.text, o.mime, o.data] for o in c.outputs]]
            for c in self.cells
        ]
        return hashlib.sha256(json.dumps(body, ensure_ascii=False).encode()).hexdigest()


def _text(value: Any, limit: int) -> str:
    """Notebook text (a string or a list of strings), cut at `limit` characters."""
    if isinstance(value, list):
        parts, size = [], 0
        for piece in value:
            if not isinstance(piece, str):
                continue
            parts.append(piece)
            size += len(piece)
            if size > limit:
                break
        value = "".join(parts)
    return value[:limit] if isinstance(value, str) else ""


def _tags(cell: dict[str, Any]) -> list[str]:
    metadata = cell.get("metadata")
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    if not isinstance(tags, list):
        return []
    return [t for t in tags[:MAX_TAGS] if isinstance(t, str)]


def _outputs(raw: Any) -> tuple[Output, ...]:
    if not isinstance(raw, list):
        return ()
    found: list[Output] = []
    for out in raw[:MAX_OUTPUTS]:
        if not isinstance(out, dict):
            continue
        kind = out.get("output_type")
        if kind == "stream":
            found.append(Output("text", _text(out.get("text"), MAX_OUTPUT_CHARS)))
        elif kind == "error":
            lines = (
                [
                    _ANSI.sub("", str(line)[:MAX_OUTPUT_CHARS])
                    for line in (out.get("traceback") or [])[:200]
                    if isinstance(line, str)
                ]
                if isinstance(out.get("traceback"), list)
                else []
            )
            text = "\n".join(lines) or f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
            found.append(Output("error", text[:MAX_OUTPUT_CHARS]))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data")
            if not isinstance(data, dict):
                continue
            image = next((m for m in IMAGE_TYPES if isinstance(data.get(m), str | list)), None)
            if image is not None:
                # Kept whole: the renderer measures it and leaves out one over its cap.
                found.append(Output("image", mime=image, data=_text(data[image], 2**31)))
            elif "text/plain" in data:
                found.append(Output("text", _text(data["text/plain"], MAX_OUTPUT_CHARS)))
    return tuple(found)


def tagged_cells(data: bytes, slug: str, limits: Limits = API_LIMITS) -> Answer:
    """The cells of a notebook tagged `slug`, in order, or IntakeError with a sentence."""
    if len(data) > limits.max_bytes:
        raise IntakeError("The notebook is larger than the service accepts.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntakeError(f"The notebook is not valid UTF-8 text (byte {exc.start}).") from exc
    raw = load_json(text, "notebook", limits)
    cells = raw.get("cells") if isinstance(raw, dict) else None
    if not isinstance(cells, list):
        raise IntakeError("The file is JSON but not a Jupyter notebook: it has no list of 'cells'.")
    if len(cells) > limits.max_cells:
        raise IntakeError(f"The notebook has {len(cells)} cells: the limit is {limits.max_cells}.")
    found: list[AnswerCell] = []
    budget = limits.max_source_chars
    for index, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or slug not in _tags(cell):
            continue
        cell_type = cell.get("cell_type")
        if cell_type not in ("markdown", "code", "raw"):
            continue
        source = _text(cell.get("source", ""), budget + 1)
        budget -= len(source)
        if budget < 0:
            raise IntakeError(
                f"The tagged cells are too long: the limit is "
                f"{limits.max_source_chars:,} characters in all."
            )
        outputs = _outputs(cell.get("outputs")) if cell_type == "code" else ()
        found.append(AnswerCell(index, str(cell_type), source, outputs))
    return Answer(tuple(found))


def answer_of(data: bytes, file_kind: str, slug: str) -> Answer:
    """The answer held by a submitted file: only notebooks have tagged cells."""
    if file_kind != "notebook":
        return Answer((), note=f"A {file_kind} file has no notebook cells tagged {slug!r}.")
    return tagged_cells(data, slug)
