"""Pictures drawn on the server as inline SVG: no script and no asset from anywhere, so they work
offline and in any browser. Two shapes serve every chart: cumulative lines against caps, and stacked
bars per time bucket."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from html import escape

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 62, 150, 14, 30
PALETTE = ("#2f6db3", "#d9822b", "#3c9a5f", "#b8423c", "#7d5ba6", "#8c6d31", "#c1579a", "#5f7d8c", "#9aa83a")
OUTCOME_COLOURS = {
    "succeeded": "#3c9a5f",
    "failed": "#b8423c",
    "needs_attention": "#e0533d",
    "paused": "#d9822b",
    "awaiting_approval": "#c1579a",
    "running": "#2f6db3",
    "queued": "#8fa8c8",
}
#: The longest legend label that fits beside the plot (a longer one is cut, whole on hover).
LEGEND_CHARS = 16
#: The most groups a bar chart stacks (the rest are one "other" group).
MAX_GROUPS = 8
#: Bucket sizes a bar chart may use, smallest first (it picks the first giving at most 48 bars).
BUCKETS = (10, 60, 300, 900, 3600, 4 * 3600, 86400)


def _x(at: float, lo: float, hi: float) -> float:
    return LEFT + (at - lo) / (hi - lo) * (W - LEFT - RIGHT) if hi > lo else LEFT


def _y(value: float, top: float) -> float:
    return H - BOTTOM - (value / top) * (H - TOP - BOTTOM) if top > 0 else H - BOTTOM


def _nice(value: float) -> float:
    """A round number at or above ``value`` for the top of an axis."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _whole_top(value: float) -> int:
    """The top of a count axis: four equal whole steps (a count of runs is never 3.75)."""
    need = max(value, 1) / 4
    if need <= 5:
        return 4 * math.ceil(need)
    return 4 * math.ceil(_nice(need))  # 10, 20, 25, 50, 100 … per step


def money(value: float) -> str:
    """As the pages write dollars (at most four decimals, at least two): the legend says what the
    tables say."""
    whole, _, cents = f"{value:.4f}".partition(".")
    return f"${whole}.{cents.rstrip('0').ljust(2, '0')}"


def _tick_money(value: float, step: float) -> str:
    """A dollar tick with as many decimals as the step needs ($0.0125, not a rounded $0.013)."""
    digits = 2
    while digits < 6 and abs(round(step, digits) - step) > step * 1e-9:
        digits += 1
    return f"${value:.{digits}f}"


def clock(at: float, span: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    if span >= 3 * 86400:
        return moment.strftime("%b %d")
    return moment.strftime("%H:%M" if span >= 600 else "%H:%M:%S")


def _frame(title: str, body: list[str], testid: str) -> str:
    return (
        f'<svg viewBox="0 0 {W} {H}" role="img" class="chart" '
        f'data-testid="{escape(testid)}" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _axes(lo: float, hi: float, top: float, ylabel: str = "") -> list[str]:
    parts = [
        f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#999"/>',
    ]
    for i in range(5):
        value = top * i / 4
        y = _y(value, top)
        label = _tick_money(value, top / 4) if ylabel == "$" else f"{value:g}"
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{escape(label)}</text>'
        )
    span = hi - lo
    shown = ""
    for i in range(5):
        at = lo + span * i / 4
        x = _x(at, lo, hi)
        if clock(at, span) == shown:
            continue  # a span of seconds: no tick says the same time twice
        shown = clock(at, span)
        parts.append(
            f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" class="tick">'
            f"{escape(clock(at, span))}</text>"
        )
    return parts


def _legend(entries: list[tuple[str, str, bool]]) -> list[str]:
    parts = []
    for i, (label, colour, dashed) in enumerate(entries[:12]):
        y = TOP + 6 + i * 16
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        parts.append(
            f'<line x1="{W - RIGHT + 10}" y1="{y}" x2="{W - RIGHT + 28}" y2="{y}" stroke="{colour}" '
            f'stroke-width="3"{dash}/>'
        )
        shown = label if len(label) <= LEGEND_CHARS else label[: LEGEND_CHARS - 1].rstrip() + "…"
        whole = f"<title>{escape(label)}</title>" if shown != label else ""  # on hover
        parts.append(f'<text x="{W - RIGHT + 33}" y="{y + 4}" class="legend">{whole}{escape(shown)}</text>')
    return parts


def empty(title: str, testid: str, why: str) -> str:
    return _frame(
        title,
        [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="empty">{escape(why)}</text>'],
        testid,
    )


def spend_lines(
    title: str,
    series: dict[str, list[tuple[float, float]]],
    caps: dict[str, float],
    *,
    start: float,
    end: float,
    testid: str,
) -> str:
    """Cumulative spend lines (step-shaped, from zero at ``start``) with each cap as a dashed line.

    The time axis spans the spend itself (from just before the first entry to the last), so a
    minute's demo is as readable as a day's work; the caps keep their height.
    """
    points = [p for line in series.values() for p in line]
    if not points and not caps:
        return empty(title, testid, "no spend recorded in this window")
    first = min((p[0] for p in points), default=start)
    last = max((p[0] for p in points), default=end)
    pad = max((last - first) * 0.05, 1.0)
    lo, hi = max(start, first - pad), min(end, last + pad) if points else end
    if hi <= lo:
        hi = lo + 1
    top = _nice(max([0.0, *(p[1] for p in points), *caps.values()]) * 1.08)
    body = _axes(lo, hi, top, "$")
    legend: list[tuple[str, str, bool]] = []
    for i, (name, line) in enumerate(sorted(series.items(), key=lambda kv: -kv[1][-1][1] if kv[1] else 0)):
        colour = PALETTE[i % len(PALETTE)] if name != "company" else "#1d1d1f"
        coords = [(_x(lo, lo, hi), _y(0, top))]
        for x, y in _per_pixel(line, lo, hi, top):
            coords.append((x, coords[-1][1]))
            coords.append((x, y))
        coords.append((_x(hi, lo, hi), coords[-1][1]))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        width = 2.5 if name == "company" else 1.6
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{width}" '
            f'data-series="{escape(name)}"/>'
        )
        total = line[-1][1] if line else 0.0
        legend.append((f"{name} {money(total)}", colour, False))
    for name, cap in caps.items():
        y = _y(cap, top)
        body.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#b8423c" '
            f'stroke-dasharray="6 4" stroke-width="1.5" data-cap="{escape(name)}"/>'
        )
        legend.append((f"{name} {money(cap)}", "#b8423c", True))
    body.extend(_legend(legend))
    return _frame(title, body, testid)


def _per_pixel(
    line: list[tuple[float, float]], lo: float, hi: float, top: float
) -> list[tuple[float, float]]:
    """The line's last value in each pixel column: a day of ledger entries draws in a few hundred
    points instead of tens of thousands (the picture is the same)."""
    out: list[tuple[float, float]] = []
    for at, total in line:
        x, y = round(_x(at, lo, hi)), _y(total, top)
        if out and out[-1][0] == x:
            out[-1] = (x, y)
        else:
            out.append((x, y))
    return out


def pick_bucket(lo: float, hi: float) -> int:
    for size in BUCKETS:
        if (hi - lo) / size <= 48:
            return size
    return BUCKETS[-1]


def bucket_name(size: int) -> str:
    names = {10: "10 s", 60: "minute", 300: "5 min", 900: "15 min", 3600: "hour", 14400: "4 h"}
    return names.get(size, "day")


def stacked_bars(
    title: str,
    items: list[tuple[float, str]],
    *,
    testid: str,
    colours: dict[str, str] | None = None,
    bucket: int | None = None,
    nothing: str = "nothing in this window",
) -> tuple[str, int]:
    """Counts of ``(at, group)`` per time bucket, stacked by group; returns the SVG and the bucket
    size it chose (the caller names it in the title: runs per hour, per minute …)."""
    if not items:
        return empty(title, testid, nothing), bucket or 3600
    tally: dict[str, int] = defaultdict(int)
    for _, group in items:
        tally[group] += 1
    if len(tally) > MAX_GROUPS:  # the most frequent keep their colour, the rest are "other"
        kept = set(sorted(tally, key=lambda g: -tally[g])[: MAX_GROUPS - 1])
        items = [(at, group if group in kept else "other") for at, group in items]
    first, last = min(a for a, _ in items), max(a for a, _ in items)
    size = bucket or pick_bucket(first, last)
    lo = math.floor(first / size) * size
    hi = (math.floor(last / size) + 1) * size
    missing = 12 - int((hi - lo) // size)  # a bar or two would fill the chart: widen it, centred
    if missing > 0:
        lo -= (missing // 2) * size
        hi += (missing - missing // 2) * size
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    groups: dict[str, int] = defaultdict(int)
    for at, group in items:
        counts[int((at - lo) // size)][group] += 1
        groups[group] += 1
    order = sorted(groups, key=lambda g: -groups[g])
    palette = dict(colours or {})
    for i, group in enumerate(g for g in order if g not in palette):
        palette[group] = PALETTE[i % len(PALETTE)]
    top = _whole_top(max(sum(c.values()) for c in counts.values()))
    body = _axes(lo, hi, top)
    n = max(1, int((hi - lo) // size))
    width = (W - LEFT - RIGHT) / n
    for index, by_group in sorted(counts.items()):
        base = 0
        x = LEFT + index * width
        for group in order:
            count = by_group.get(group, 0)
            if not count:
                continue
            y_top, y_bottom = _y(base + count, top), _y(base, top)
            body.append(
                f'<rect x="{x + 1:.1f}" y="{y_top:.1f}" width="{max(width - 2, 1):.1f}" '
                f'height="{y_bottom - y_top:.1f}" fill="{palette[group]}" data-group="{escape(group)}">'
                f"<title>{escape(clock(lo + index * size, hi - lo))}: {count} {escape(group)}</title></rect>"
            )
            base += count
    body.extend(_legend([(f"{g} ({groups[g]})", palette[g], False) for g in order]))
    return _frame(title, body, testid), size
