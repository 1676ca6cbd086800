"""The report's charts as geometry: where each point, bar, tick and label goes.

:func:`charts` lays out three charts of a leaderboard: pass rate against latency (the
area of a point is its row's cost), pass rate against cost (token prices, or a share of
the busy time of a provider priced by the hour), and a bar of pass rate per row with its
95% interval. The HTML templates draw them as inline SVG, so they need no script;
nothing here writes markup. :func:`heat_map` is the pass rate per category × prompt ×
provider, as the page's table of coloured cells draws it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .summary import CategoryRow, Row, Summary
from .views import category_name, rate

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2",
           "#65a30d")
W, H, LEFT, RIGHT, TOP, BOTTOM = 560, 320, 56, 28, 16, 44
LABEL_CHARS = 32
BAR_LABEL_W, BAR_PLOT_W, BAR_H, BAR_GAP = 230, 560, 18, 8


@dataclass
class Tick:
    """A grid line at ``at`` (pixels) and its label."""

    at: float
    label: str


@dataclass
class Point:
    """A row on a scatter chart, its label beside it (``anchor``: SVG text-anchor)."""

    cx: float
    cy: float
    r: float
    colour: str
    title: str  # the tooltip
    label: str
    label_x: float
    label_y: float
    anchor: str


@dataclass
class Scatter:
    """Pass rate (y) against latency or cost (x); ``empty`` says why there are no points."""

    caption: str
    x_name: str
    empty: str | None = None
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    width: int = W
    height: int = H
    left: int = LEFT
    right: int = W - RIGHT
    top: int = TOP
    bottom: int = H - BOTTOM
    mid_x: float = LEFT + (W - LEFT - RIGHT) / 2
    mid_y: float = TOP + (H - TOP - BOTTOM) / 2


@dataclass
class Bar:
    """A row's pass rate as a bar from ``x``, its interval from ``low`` to ``high``."""

    y: float
    mid: float
    label: str
    title: str
    width: float
    low: float
    high: float
    value: str
    value_x: float
    colour: str


@dataclass
class Bars:
    """A horizontal bar per row, with percent ticks along ``axis_y``."""

    caption: str
    width: int
    height: int
    axis_y: float
    ticks: list[Tick]
    bars: list[Bar]
    x: int = BAR_LABEL_W
    top: int = TOP
    bar_height: int = BAR_H


@dataclass
class Charts:
    latency: Scatter
    cost: Scatter
    bars: Bars


def ticks(high: float) -> list[float]:
    """Round ticks from 0 to at least ``high``: at most six."""
    if high <= 0:
        return [0.0, 1.0]
    step = 10 ** math.floor(math.log10(high / 5))
    for factor in (1, 2, 2.5, 5, 10):
        if high / (step * factor) <= 5:
            step *= factor
            break
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def axis_label(value: float, unit: str) -> str:
    return {"$": f"${value:.3g}", "s": f"{value:.3g}s"}.get(unit, f"{value:.0%}")


def short(label: str) -> str:
    """``label`` cut to ``LABEL_CHARS`` characters, ``…`` marking the cut."""
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def _free_y(placed: list[tuple[float, float, float]], x1: float, x2: float, y: float) -> float:
    """A baseline near ``y`` for a label spanning ``x1``–``x2`` that overlaps no other."""
    candidate = y
    for step in range(16):  # y, y+12, y-12, y+24, ...
        candidate = y + (step + 1) // 2 * 12 * (1 if step % 2 else -1)
        if TOP + 10 <= candidate <= H - BOTTOM - 2 and all(
                x2 < a or x1 > b or abs(candidate - c) >= 12 for a, b, c in placed):
            break
    placed.append((x1, x2, candidate))
    return candidate


def scatter(rows: Sequence[Row], x_of: Callable[[Row], float | None], unit: str,
            caption: str, colours: dict[str, str]) -> Scatter:
    """Pass rate against latency (``unit="s"``) or cost (``"$"``), a labelled point per
    row; on the latency chart the area of a point is proportional to the row's cost."""
    points = [(row, x) for row in rows if (x := x_of(row)) is not None]
    what = "cost data (no price configured)" if unit == "$" else "measured latency"
    chart = Scatter(caption, "cost (USD)" if unit == "$" else "latency p50")
    if not points:
        chart.empty = f"no {what}"
        return chart
    if len(points) < len(rows):
        chart.caption += f" ({len(rows) - len(points)} row(s) without {what} left out)"
    x_ticks = ticks(max(x for _, x in points) * 1.1)
    x_max = x_ticks[-1] or 1.0
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + plot_w * x / x_max

    def py(y: float) -> float:
        return TOP + plot_h * (1 - y)

    chart.y_ticks = [Tick(py(y), f"{y:.0%}") for y in (0, 0.25, 0.5, 0.75, 1)]
    chart.x_ticks = [Tick(px(x), axis_label(x, unit)) for x in x_ticks]
    top_cost = max((r.cost for r in rows if r.cost), default=0.0)
    placed: list[tuple[float, float, float]] = []
    for row, x in points:
        sized = unit != "$" and row.cost is not None and top_cost > 0
        radius = 4 + 10 * math.sqrt(row.cost / top_cost) if sized else 6.0
        cx, cy = px(x), py(row.pass_rate)
        label = short(row.label)
        width = sum(11.0 if ord(ch) >= 0x2E80 else 6.2 for ch in label)  # CJK is wider
        start = cx + radius + 3 + width <= W - 4
        x1 = cx + radius + 3 if start else cx - radius - 3 - width
        chart.points.append(Point(
            cx, cy, radius, colours[row.prompt_id],
            f"{row.label}: {row.pass_rate:.1%}, {axis_label(x, unit)}", label,
            x1 if start else x1 + width, _free_y(placed, x1, x1 + width, cy + 4),
            "start" if start else "end"))
    return chart


def bars(rows: Sequence[Row], colours: dict[str, str]) -> Bars:
    """A horizontal bar of pass rate per row, with its 95% interval as a whisker."""
    plot_w = BAR_PLOT_W
    axis_y = TOP + len(rows) * (BAR_H + BAR_GAP)
    chart = Bars("Pass rate per prompt × provider, with its 95% interval",
                 BAR_LABEL_W + plot_w + 64, axis_y + 30, axis_y,
                 [Tick(BAR_LABEL_W + plot_w * x, f"{x:.0%}") for x in (0, 0.25, 0.5, 0.75, 1)],
                 [])
    for i, row in enumerate(rows):
        y = TOP + i * (BAR_H + BAR_GAP)
        low, high = BAR_LABEL_W + plot_w * row.ci_low, BAR_LABEL_W + plot_w * row.ci_high
        chart.bars.append(Bar(
            y, y + BAR_H / 2, short(row.label), row.label, plot_w * row.pass_rate, low, high,
            f"{row.pass_rate:.1%}", max(BAR_LABEL_W + plot_w * row.pass_rate, high) + 5,
            colours[row.prompt_id]))
    return chart


def charts(rows: Sequence[Row]) -> Charts:
    """The three charts of a leaderboard's rows, a colour per prompt."""
    prompts = list(dict.fromkeys(row.prompt_id for row in rows))
    colours = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(prompts)}
    by_hour = ", ".join(dict.fromkeys(row.provider_id for row in rows if row.priced_by_hour))
    hourly = f"; {by_hour} by the hour: a share of its busy time" if by_hour else ""
    return Charts(
        scatter(rows, lambda r: r.latency_p50, "s",
                "Quality vs latency (colour: prompt; area: cost)", colours),
        scatter(rows, lambda r: r.cost, "$", f"Quality vs cost (colour: prompt{hourly})",
                colours),
        bars(rows, colours))


HEAT_LEVELS = 10  # colours of the heat map: the pass rate in tenths


@dataclass
class HeatCell:
    """One category of one prompt × provider on the heat map: ``level`` (0 to
    ``HEAT_LEVELS``) is its pass rate, rounded, for its colour."""

    rate: str  # "75.0%"
    detail: str  # "41–93 · 0.812": the interval and the score
    title: str  # everything, for a tooltip
    level: int


@dataclass
class HeatMap:
    """Categories (rows) × prompt × provider (``columns``); ``None`` where a row has no
    case of a category."""

    columns: list[str]
    rows: list[tuple[str, list[HeatCell | None]]]


def heat_map(summary: Summary) -> HeatMap | None:
    """Pass rate per category × prompt × provider (``None`` without categories)."""
    if not summary.category_names:
        return None
    rows = []
    for name in summary.category_names:
        cells = [_heat_cell(row, row.categories[name]) if name in row.categories else None
                 for row in summary.rows]
        rows.append((category_name(name), cells))
    return HeatMap([row.label for row in summary.rows], rows)


def _heat_cell(row: Row, category: CategoryRow) -> HeatCell:
    interval = f"{category.ci_low * 100:.0f}–{category.ci_high * 100:.0f}"
    title = (f"{category_name(category.category)} — {row.label}: {rate(category)} pass, "
             f"score {category.score:.3f}, {category.cases:,} cases")
    return HeatCell(f"{category.pass_rate:.1%}", f"{interval} · {category.score:.3f}", title,
                    level=int(category.pass_rate * HEAT_LEVELS + 0.5))
