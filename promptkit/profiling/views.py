"""A profile laid out as tables, once, for the terminal and the HTML page alike.

:func:`run_table` is one run's table: a row per concurrency level with its throughputs,
the median and p99 of each latency, and the columns only some runs have (goodput and the
share meeting the SLOs, peak RSS, KV-cache usage, cost). :func:`side_by_side` compares
providers (or GGUF files) on one workload: output tokens/s at each level, latency at the
lowest, peak memory, the highest level meeting the SLOs and the lowest $/1M tokens.
Cells are text; nothing here prints or writes markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .metrics import LevelResult
from .profiler import ProfileReport, ProfileRun
from .settings import describe_slo

MISSING = "—"


@dataclass(frozen=True)
class Column:
    """A table column: its header and how a level's cell is made (None: no value)."""

    header: str
    value: Callable[[LevelResult], Any]
    fmt: str = "{:.1f}"

    def cell(self, level: LevelResult) -> str:
        value = self.value(level)
        return MISSING if value is None else self.fmt.format(value)


def _field(name: str) -> Callable[[LevelResult], Any]:
    return lambda level: level[name]


LEVEL_COLUMNS = (  # headers fold at "\n" on the terminal; latencies are in ms
    Column("concur-\nrency", _field("concurrency"), "{}"),
    Column("com-\npleted", _field("completed"), "{}"),
    Column("failed", _field("failed"), "{}"),
    Column("req/s", _field("request_throughput"), "{:.2f}"),
    Column("out\ntok/s", _field("output_throughput")),
    Column("total\ntok/s", _field("total_token_throughput")),
    *(Column(f"{metric.upper()}\n{stat}", _field(f"{key}_{metric}_ms"),
             "{:.0f}" if metric in ("ttft", "e2el") else "{:.1f}")
      for metric in ("ttft", "tpot", "itl", "e2el")
      for stat, key in (("p50", "median"), ("p99", "p99"))),
)
OPTIONAL_COLUMNS = (
    Column("goodput\nreq/s", _field("request_goodput"), "{:.2f}"),
    Column("SLO\nmet", lambda level: None if level.slo_attainment is None
           else 100 * level.slo_attainment, "{:.0f}%"),
    Column("peak RSS\nMB", _field("peak_rss_mb"), "{:.0f}"),
    Column("KV\ncache %", _field("kv_cache_usage_pct")),
    Column("$/1M\nout tok", _field("usd_per_1m_output_tokens"), "{:.4g}"),
    Column("token\ncost $", _field("token_cost_usd"), "{:.4g}"),
)


@dataclass
class TableView:
    """A titled table of text cells, with lines to show under it."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def run_title(run: ProfileRun) -> str:
    parts = [run.provider, run.workload, run.engine or run.base_url]
    if run.levels:
        parts += [f"tokens: {run.tokens_from}", "latencies in ms"]
    return " · ".join(part for part in parts if part)


def run_table(run: ProfileRun, slo: dict[str, float]) -> TableView:
    """One run: a row per level; optional columns only when some level has them."""
    columns = list(LEVEL_COLUMNS) + [
        column for column in OPTIONAL_COLUMNS
        if any(column.value(level) is not None for level in run.levels)]
    rows = [[column.cell(level) for column in columns] for level in run.levels]
    notes = []
    if slo and run.levels:
        best = run.max_concurrency_meeting_slo
        reach = (f"at least 90% of requests met them up to concurrency {best}"
                 if best is not None else "no level had 90% of its requests meet them")
        notes.append(f"SLO {describe_slo(slo)}: {reach}")
    if run.engine and "llama-cpp-python" in run.engine and any(
            level.concurrency > 1 for level in run.levels):
        notes.append("llama-cpp-python's server answers one request at a time: the others "
                     "wait their turn (llama-server serves them in parallel slots)")
    for level in run.levels:
        for error, count in level.errors.items():
            notes.append(f"concurrency {level.concurrency}: {count} failed: {error}")
    if run.error:
        notes.append(f"error: {run.error}")
    return TableView(run_title(run), [column.header for column in columns], rows, notes)


def _at(run: ProfileRun, concurrency: int, name: str) -> Any:
    level = next((level for level in run.levels if level.concurrency == concurrency), None)
    return None if level is None else level[name]


def _text(value: Any, fmt: str) -> str:
    return MISSING if value is None else fmt.format(value)


def side_by_side(report: ProfileReport) -> list[TableView]:
    """Per workload, a row per provider (only when several providers were profiled)."""
    if len(report.providers) < 2:
        return []
    levels = report.settings.concurrency
    lowest = levels[0]
    tables = []
    for workload in dict.fromkeys(run.workload for run in report.runs):
        runs = [run for run in report.runs if run.workload == workload]
        headers = ["provider", *(f"out tok/s\n@{c}" for c in levels),
                   f"TTFT p50\nms @{lowest}", f"TPOT p50\nms @{lowest}", "peak RSS\nMB",
                   "SLO met\nup to", "lowest $/1M\nout tok"]
        rows = []
        for run in runs:
            rss = [level.peak_rss_mb for level in run.levels if level.peak_rss_mb]
            costs = [level.usd_per_1m_output_tokens for level in run.levels
                     if level.usd_per_1m_output_tokens is not None]
            rows.append([
                run.provider, *(_text(_at(run, c, "output_throughput"), "{:.1f}")
                                for c in levels),
                _text(_at(run, lowest, "median_ttft_ms"), "{:.0f}"),
                _text(_at(run, lowest, "median_tpot_ms"), "{:.1f}"),
                _text(max(rss, default=None), "{:.0f}"),
                _met_up_to(run) if report.settings.slo and run.levels else MISSING,
                _text(min(costs, default=None), "{:.4g}")])
        tables.append(_without_empty_columns(TableView(f"side by side · {workload}",
                                                       headers, rows)))
    return tables


def _met_up_to(run: ProfileRun) -> str:
    best = run.max_concurrency_meeting_slo
    return "none" if best is None else str(best)


def _without_empty_columns(table: TableView) -> TableView:
    keep = [index for index in range(len(table.headers))
            if index == 0 or any(row[index] != MISSING for row in table.rows)]
    return TableView(table.title, [table.headers[i] for i in keep],
                     [[row[i] for i in keep] for row in table.rows], table.notes)
