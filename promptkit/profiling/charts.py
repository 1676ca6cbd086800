"""The profile page's charts as geometry: throughput and latency against concurrency.

For each workload, :func:`profile_charts` lays out four line charts (output tokens/s,
median TTFT, median TPOT and median E2EL at each concurrency level), a line and a colour
per provider. Levels are evenly spaced along x (1, 2, 4, 8 read as steps). The HTML
template draws them as inline SVG; nothing here writes markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..reporting.charts import BOTTOM, LEFT, PALETTE, RIGHT, TOP, H, Scatter, Tick, W, short, ticks
from .profiler import ProfileReport, ProfileRun

CHARTED = (("output_throughput", "output tokens/s", "{:.1f}"),
           ("median_ttft_ms", "median TTFT (ms)", "{:.0f}"),
           ("median_tpot_ms", "median TPOT (ms)", "{:.1f}"),
           ("median_e2el_ms", "median E2EL (ms)", "{:.0f}"))


@dataclass
class Dot:
    x: float
    y: float
    title: str  # the tooltip: provider, level and value


@dataclass
class Line:
    """One provider's values across the levels it has."""

    label: str
    colour: str
    path: str
    dots: list[Dot]


@dataclass
class LineChart(Scatter):
    """A metric (y) against concurrency (x), a line per provider; the frame is the
    report's scatter chart's (``empty`` says why nothing is drawn)."""

    lines: list[Line] = field(default_factory=list)


@dataclass
class WorkloadCharts:
    workload: str
    charts: list[LineChart]
    legend: list[tuple[str, str]]  # (colour, provider)


def line_chart(runs: Sequence[ProfileRun], levels: Sequence[int], metric: str, caption: str,
               fmt: str, colours: dict[str, str]) -> LineChart:
    chart = LineChart(caption, "concurrency")
    values = [(run, level.concurrency, level[metric]) for run in runs for level in run.levels
              if level[metric] is not None]
    if not values:
        chart.empty = "nothing measured"
        return chart
    y_ticks = ticks(max(value for _, _, value in values) * 1.1)
    y_max = y_ticks[-1] or 1.0
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    step = plot_w / max(len(levels) - 1, 1)
    x_of = {level: LEFT + (step * i if len(levels) > 1 else plot_w / 2)
            for i, level in enumerate(levels)}

    def py(value: float) -> float:
        return TOP + plot_h * (1 - value / y_max)

    chart.x_ticks = [Tick(x, str(level)) for level, x in x_of.items()]
    chart.y_ticks = [Tick(py(value), f"{value:g}") for value in y_ticks]
    for run in runs:
        dots = [Dot(x_of[c], py(value), f"{run.provider}, concurrency {c}: "
                    f"{fmt.format(value)}")
                for r, c, value in values if r is run]
        if dots:
            path = "M" + "L".join(f"{dot.x:.1f} {dot.y:.1f}" for dot in dots)
            chart.lines.append(Line(short(run.provider), colours[run.provider], path, dots))
    return chart


def profile_charts(report: ProfileReport) -> list[WorkloadCharts]:
    """The four charts of each workload, a colour per provider."""
    colours = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(report.providers)}
    found = []
    for workload in dict.fromkeys(run.workload for run in report.runs):
        runs = [run for run in report.runs if run.workload == workload]
        charts = [line_chart(runs, report.settings.concurrency, metric, caption, fmt, colours)
                  for metric, caption, fmt in CHARTED]
        legend = [(colours[p], short(p)) for p in dict.fromkeys(r.provider for r in runs)]
        found.append(WorkloadCharts(workload, charts, legend))
    return found
