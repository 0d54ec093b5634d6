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


SERIES = (
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("requirements_not_met", "requirements not met"),
)


def columns(days: Sequence[dict[str, int | str]], title: str) -> Markup:
    """Daily succeeded, failed and requirements-not-met columns (stacked), oldest on the
    left; the x axis is the UTC day, the y axis the number of clients' reports."""
    width, height, pad, left = 700, 180, 36, 44
    peak = max((sum(int(d.get(k, 0)) for k, _ in SERIES) for d in days), default=0) or 1
    step = (width - left) / max(len(days), 1)
    bar = step * 0.62
    base = height - pad
    scale = (base - 10) / peak
    shapes = [
        f'<line x1="{left}" y1="{base}" x2="{width}" y2="{base}" stroke="#6e7781"/>',
        f'<line x1="{left}" y1="4" x2="{left}" y2="{base}" stroke="#6e7781"/>',
        f'<text x="{left - 4}" y="{base}" text-anchor="end">0</text>',
        f'<text x="{left - 4}" y="{base - peak * scale + 4:.1f}" text-anchor="end">{peak}</text>',
        f'<text x="12" y="{base / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {base / 2:.0f})" class="axis">reports</text>',
        f'<text x="{(left + width) / 2:.0f}" y="{height - 2}" text-anchor="middle" '
        f'class="axis">day (UTC)</text>',
    ]
    for index, day in enumerate(days):
        x = left + index * step + (step - bar) / 2
        top = float(base)
        for key, words in SERIES:
            value = int(day.get(key, 0))
            if value:
                h = value * scale
                top -= h
                shapes.append(
                    f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" '
                    f'height="{h:.1f}" fill="{colour(key)}"><title>{day["day"]}: '
                    f"{value} {words}</title></rect>"
                )
        if index % 2 == 0 or len(days) <= 8:
            shapes.append(
                f'<text x="{x + bar / 2:.1f}" y="{base + 14}" '
                f'text-anchor="middle">{str(day["day"])[5:]}</text>'
            )
    totals = ", ".join(f"{sum(int(d.get(key, 0)) for d in days)} {words}" for key, words in SERIES)
    summary = f"{totals} over {len(days)} days"
    return Markup(
        f'<svg class="chart columns" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}: {summary}"><title>{escape(title)}: '
        f"{summary}</title>{''.join(shapes)}</svg>"
    )


def graph(nodes: Sequence[tuple[str, str]], edges: Sequence[tuple[str, str, str]]) -> Markup:
    """A small directed graph of applications: `nodes` (id, label) in columns by depth,
    `edges` (from, to, kind) as labelled arrows; the page lists the same edges as text."""
    depth: dict[str, int] = {node: 0 for node, _ in nodes}
    for _ in range(len(nodes)):  # longest path from a root, bounded by the node count
        for start, end, _kind in edges:
            if start in depth and end in depth and depth[end] < depth[start] + 1:
                depth[end] = min(depth[start] + 1, len(nodes))
    columns_of: dict[int, list[str]] = {}
    for node, _ in nodes:
        columns_of.setdefault(depth[node], []).append(node)
    box_w, box_h, gap_x, gap_y = 170, 34, 70, 18
    place = {
        node: (12 + level * (box_w + gap_x), 12 + row * (box_h + gap_y))
        for level, members in columns_of.items()
        for row, node in enumerate(members)
    }
    width = 24 + (max(columns_of, default=0) + 1) * (box_w + gap_x) - gap_x
    height = 24 + max((len(m) for m in columns_of.values()), default=1) * (box_h + gap_y)
    labels = dict(nodes)
    shapes = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#57606a"/></marker></defs>'
    ]
    for start, end, kind in edges:
        if start not in place or end not in place:
            continue
        (x1, y1), (x2, y2) = place[start], place[end]
        dashed = ' stroke-dasharray="6 4"' if kind == "supersedes" else ""
        shapes.append(
            f'<line x1="{x1 + box_w}" y1="{y1 + box_h / 2}" x2="{x2}" y2="{y2 + box_h / 2}" '
            f'stroke="#57606a"{dashed} marker-end="url(#arrow)"><title>{escape(start)} '
            f"{escape(kind)} {escape(end)}</title></line>"
        )
        shapes.append(
            f'<text x="{(x1 + box_w + x2) / 2:.0f}" y="{(y1 + y2) / 2 + box_h / 2 - 4:.0f}" '
            f'text-anchor="middle" class="axis">{escape(kind)}</text>'
        )
    for node, (x, y) in place.items():
        shapes.append(
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4" fill="#f6f8fa" '
            f'stroke="#57606a"/><text x="{x + 8}" y="{y + 21}">{escape(labels[node][:24])}'
            f"</text>"
        )
    text = "; ".join(f"{s} {k} {e}" for s, e, k in edges) or "no links"
    return Markup(
        f'<svg class="chart graph" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Dependencies and supersedence: {escape(text)}">'
        f"<title>Dependencies and supersedence: {escape(text)}</title>{''.join(shapes)}</svg>"
    )
