"""Small charts for the console, drawn on the server as inline SVG: no script, no external
asset, nothing the pages' Content-Security-Policy has to allow. Each bar carries a <title>
(the browser shows it on hover)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 38, 22


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[int]
    color: str  # a CSS colour


def _nice(n: int) -> int:
    """A round maximum for the axis, at least n (1, 2, 5, 10, 20, 50, …)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= n:
                return step * m
        step *= 10


def bar_chart(title: str, days: Sequence[date], series: Sequence[Series], *, ident: str) -> Markup:
    """Stacked bars, one per day (oldest left), with a legend and the axis maximum."""
    totals = [sum(s.values[i] for s in series) for i in range(len(days))]
    top = _nice(max([*totals, 1]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    parts = [
        f'<svg id="{escape(ident)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="12" font-size="12" font-weight="600">{escape(title)}</text>',
    ]
    x_legend = float(LEFT)
    for s in series:  # the legend, on its own line under the title
        parts.append(
            f'<rect x="{x_legend:.0f}" y="18" width="10" height="10" fill="{escape(s.color)}"/>'
            f'<text x="{x_legend + 14:.0f}" y="27" font-size="11">{escape(s.label)}</text>'
        )
        x_legend += 24 + 6.5 * len(s.label)
    base = TOP + plot_h
    parts.append(
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#8c959f"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 4}" font-size="10" text-anchor="end">{top}</text>'
        f'<text x="{LEFT - 4}" y="{base}" font-size="10" text-anchor="end">0</text>'
    )
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar) / 2
        y = float(base)
        for s in series:
            value = s.values[i]
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{escape(s.color)}"><title>{day.isoformat()}: {value} '
                f"{escape(s.label)}</title></rect>"
            )
        if i in (0, len(days) // 2, len(days) - 1):
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 6}" font-size="10" '
                f'text-anchor="middle">{day.strftime("%m-%d")}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
