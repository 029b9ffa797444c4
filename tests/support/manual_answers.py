"""hw2 notebooks answering the manual exercise `saliency-discussion`, for the tests of
the grading pages: a Markdown discussion and a plot cell with its image, tagged with
the exercise's slug, and one hostile answer (raw HTML, an event handler, links)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

from tests.support.notebooks import course_notebook
from tests.support.paths import HW2

MANUAL = "saliency-discussion"
GRADING = f"/ui/courses/dlp/assignments/{HW2}/exercises/{MANUAL}/grading"
#: Each student's answer: the Markdown, and whether a plot cell with an image follows.
ANSWERS = {
    "alice": (
        "## Comparison\n\nGrad-CAM is **coarse** (the 4x4 feature map, upsampled); "
        "integrated gradients are pixel-sharp. The map of the 7 lights up the stroke "
        "the model predicts from.",
        True,
    ),
    "bob": (
        "Both maps look similar. A failure case: the noisy 3, where grad-CAM points "
        "at the background.",
        False,
    ),
    # Hostile: raw HTML, an event handler, a javascript: link, a remote image.
    "carol": (
        '<script>window.__pwned = 1</script>\n\n<img src=x onerror="window.__pwned=2">'
        "\n\n[see my maps](javascript:window.__pwned=3) and "
        "![remote](https://evil.example/track.png)\n\nIG is sharper than grad-CAM.",
        False,
    ),
}
STUDENTS = tuple(ANSWERS)
#: The width of png()'s image, as the page test reads it back.
PNG_WIDTH = 12


def png(width: int = PNG_WIDTH, height: int = 8) -> str:
    """A small valid PNG (a red rectangle), base64 as a notebook output holds it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\x00" + b"\xd0\x20\x20" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(raw).decode()


def answer_notebook(text: str, with_plot: bool) -> bytes:
    """hw2's starter with the student's tagged answer: a Markdown discussion, and the
    plot cell (its image output as saved by Jupyter) tagged the same."""
    notebook = json.loads(course_notebook(HW2, "starter"))
    notebook["cells"] = [
        c for c in notebook["cells"] if MANUAL not in (c.get("metadata") or {}).get("tags", [])
    ]
    cells: list[dict[str, Any]] = [
        {"cell_type": "markdown", "metadata": {"tags": [MANUAL]}, "source": text}
    ]
    if with_plot:
        image = {"image/png": png(), "text/plain": "<Figure>"}
        cells.append(
            {
                "cell_type": "code",
                "metadata": {"tags": [MANUAL]},
                "execution_count": 7,
                "source": "# grad-CAM (left) and integrated gradients (right), two test images\n",
                "outputs": [{"output_type": "display_data", "metadata": {}, "data": image}],
            }
        )
    notebook["cells"].extend(cells)
    return json.dumps(notebook).encode()


def student_answer(student: str) -> bytes:
    text, with_plot = ANSWERS[student]
    return answer_notebook(text, with_plot)


def expected_score(
    items: list[dict[str, Any]], keys: list[int], adjustment: float, ceiling: float
) -> float:
    """The rubric's rule: clamp(sum of the applied items (1-based positions) +
    adjustment, 0, ceiling)."""
    total = sum(float(items[k - 1]["points"]) for k in keys) + adjustment
    return round(min(max(total, 0.0), ceiling), 6)


def fmt(x: float) -> str:
    """A score as the pages write it (the `score` filter, app.js's formatPoints)."""
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
