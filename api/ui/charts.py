"""Score histograms, laid out for an inline SVG (no script, no library)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from api.ui.render import fmt_score


@dataclass
class Histogram:
    title: str
    max_score: float
    count: int
    mean: float | None
    median: float | None
    bars: list[dict[str, Any]]
    ticks: list[dict[str, Any]]
    width: int = 320
    height: int = 160
    plot_top: int = 10
    plot_bottom: int = 130
    plot_left: int = 34
    plot_right: int = 310
    peak: int = 0


def histogram(title: str, values: Iterable[float], max_score: float, bins: int = 10) -> Histogram:
    """Bars for a histogram of scores from 0 to max_score."""
    values = [v for v in values if v is not None]
    top = max_score if max_score > 0 else max(values, default=1.0) or 1.0
    counts = [0] * bins
    for v in values:
        index = min(bins - 1, max(0, int(math.floor(v / top * bins)))) if top else 0
        counts[index] += 1
    h = Histogram(
        title=title,
        max_score=max_score,
        count=len(values),
        mean=round(statistics.fmean(values), 2) if values else None,
        median=round(statistics.median(values), 2) if values else None,
        bars=[],
        ticks=[],
    )
    peak = max(counts) or 1
    plot_w = h.plot_right - h.plot_left
    plot_h = h.plot_bottom - h.plot_top
    slot = plot_w / bins
    for i, n in enumerate(counts):
        low, high = top * i / bins, top * (i + 1) / bins
        bar_h = plot_h * n / peak
        h.bars.append(
            {
                "x": round(h.plot_left + i * slot + 1, 2),
                "width": round(slot - 2, 2),
                "y": round(h.plot_bottom - bar_h, 2),
                "height": round(bar_h, 2),
                "count": n,
                "label": f"{fmt_score(round(low, 2))} to {fmt_score(round(high, 2))}"
                f"{' (inclusive)' if i == bins - 1 else ''}: {n} "
                f"student{'s' if n != 1 else ''}",
            }
        )
    for i in (0, bins // 2, bins):
        h.ticks.append(
            {"x": round(h.plot_left + i * slot, 2), "label": fmt_score(round(top * i / bins, 2))}
        )
    h.peak = peak
    return h
