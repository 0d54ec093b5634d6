"""Charts drawn on the server as SVG: no script, no build step, readable by screen readers.

Every chart carries a <title> with the numbers it shows, and the page puts the same numbers
in a table or legend next to it, so the chart is never the only way to read them. Colours
are fill attributes (not inline styles), which the console's Content-Security-Policy allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

#: Fills with at least 3:1 contrast against white (WCAG 1.4.11, graphical objects).
COLOURS = {
    "succeeded": "#1a7f37",
    "installed": "#1a7f37",
    "in_progress": "#0969da",
    "distributing": "#0969da",
    "failed": "#cf222e",
    "validation_failed": "#cf222e",
    "unknown": "#6e7781",
    "pending": "#6e7781",
    "requirements_not_met": "#9a6700",
}


@dataclass(frozen=True)
class Part:
    key: str
    label: str
    value: int


def colour(key: str) -> str:
    return COLOURS.get(key, "#6e7781")


def stacked_bar(parts: Sequence[Part], title: str, height: int = 18) -> Markup:
    """One horizontal bar split by share; an empty bar when every value is zero."""
    total = sum(p.value for p in parts)
    summary = ", ".join(f"{p.label} {p.value}" for p in parts) or "no data"
    shapes = [f'<rect x="0" y="0" width="1000" height="{height}" fill="#eaeef2" rx="3"/>']
    x = 0.0
    for part in parts:
        if not part.value or not total:
            continue
        width = 1000 * part.value / total
        shapes.append(
            f'<rect x="{x:.2f}" y="0" width="{width:.2f}" height="{height}" '
            f'fill="{colour(part.key)}"><title>{escape(part.label)}: {part.value}'
            f"</title></rect>"
        )
        x += width
    return Markup(
        f'<svg class="chart bar" viewBox="0 0 1000 {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(title)}: {escape(summary)}">'
        f"<title>{escape(title)}: {escape(summary)}</title>{''.join(shapes)}</svg>"
    )


def columns(days: Sequence[dict[str, int | str]], title: str) -> Markup:
    """Daily succeeded (green) over failed (red) columns, oldest on the left."""
    width, height, pad = 700, 160, 22
    peak = max((int(d["succeeded"]) + int(d["failed"]) for d in days), default=0) or 1
    step = width / max(len(days), 1)
    bar = step * 0.62
    shapes = [
        f'<line x1="0" y1="{height - pad}" x2="{width}" y2="{height - pad}" stroke="#d0d7de"/>'
    ]
    for index, day in enumerate(days):
        ok, bad = int(day["succeeded"]), int(day["failed"])
        x = index * step + (step - bar) / 2
        scale = (height - pad - 8) / peak
        top = float(height - pad)
        for value, key in ((ok, "succeeded"), (bad, "failed")):
            if value:
                h = value * scale
                top -= h
                shapes.append(
                    f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" '
                    f'height="{h:.1f}" fill="{colour(key)}"><title>{day["day"]}: '
                    f"{value} {key}</title></rect>"
                )
        if index % 2 == 0 or len(days) <= 8:
            shapes.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 6}" '
                f'text-anchor="middle">{str(day["day"])[5:]}</text>'
            )
    shapes.append(f'<text x="2" y="12">{peak}</text>')
    total_ok = sum(int(d["succeeded"]) for d in days)
    total_bad = sum(int(d["failed"]) for d in days)
    summary = f"{total_ok} succeeded, {total_bad} failed over {len(days)} days"
    return Markup(
        f'<svg class="chart columns" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}: {summary}"><title>{escape(title)}: '
        f"{summary}</title>{''.join(shapes)}</svg>"
    )
