"""What a leaderboard and a comparison show, built once for every presenter.

:func:`leaderboard_view` turns a :class:`Summary` into columns with a cell per row, the
★/= marks, the footer lines and, when cases have categories, a row per category;
:func:`comparison_view` turns a :class:`Comparison` into its table, the metric intervals
(and per category), what the test could detect, notes and warnings, the flipped cases
and the verdict; :func:`tool_call_line` (from :mod:`promptkit.results`)
is a tool call on one line (``→ get_weather({"city": "Paris"})``). The terminal
(:mod:`.console`), the HTML page (:mod:`.html`) and the Markdown summary
(:mod:`.markdown`) lay these out: every cell of their tables and every line under them is
formatted here, once, so the three agree.

Text from the data (ids, outputs, error messages) is kept as it came, and each presenter
escapes it for its medium. :func:`verdict_line` and :func:`detection_lines` are the
exception: they are the one-line messages CI logs and pytest failures print, so the labels
in them are already :func:`~promptkit.terminal.printable_line`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..comparing.baseline import SideCase
from ..comparing.comparison import PASS_RATE, Comparison, Flip, MetricChange, RowComparison
from ..comparing.stats import Interval
from ..results import tool_call_line as tool_call_line  # one line per call, in results
from ..terminal import printable_line
from .formats import count as count
from .formats import duration as duration
from .formats import money as money
from .formats import points as points
from .formats import seconds as seconds
from .summary import CategoryRow, Row, Summary

BEST_MARK = "★"
TIED_MARK = "="

Tone = Literal["worse", "better", ""]
TOO_FEW = "too few cases to tell"  # a row's verdict when its test could catch no drop


def rate(row: Row | CategoryRow) -> str:
    """A pass rate and its 95% interval: ``62.5% (31–86)``."""
    return f"{row.pass_rate:.1%} ({row.ci_low * 100:.0f}–{row.ci_high * 100:.0f})"


def category_name(name: str | None) -> str:
    """A category as shown; ``(none)`` for the cases without one."""
    return "(none)" if name is None else name


def mark(row: Row) -> str:
    """``★ `` for a significant winner, ``= `` for a leader tied with others, else ``""``."""
    return f"{BEST_MARK} " if row.best else (f"{TIED_MARK} " if row.tied else "")


# -- the leaderboard ---------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a table: ``key`` names it for presenters (``metric:<name>`` for a
    metric), ``header`` is what it says (``\\n`` where a narrow terminal breaks it);
    ``text`` columns are left-aligned and may fold, the others are numbers."""

    key: str
    header: str
    text: bool = False

    @property
    def title(self) -> str:
        """The header on one line."""
        return " ".join(self.header.split())

    @property
    def metric(self) -> str | None:
        """The metric's name, for a metric column."""
        return self.key.removeprefix("metric:") if self.key.startswith("metric:") else None


@dataclass
class LeaderboardRow:
    """One prompt × provider as shown: its cells in column order and how it stands."""

    label: str
    mark: str  # "★ ", "= " or ""
    best: bool  # a significant winner of its provider
    below: bool  # under its threshold
    cells: list[str]


@dataclass
class LeaderboardView:
    """The leaderboard table and the lines under it.

    ``leaders`` says, per provider with several variants, who won and by which test, or
    who is tied; ``totals`` counts results, errors, requests and cost (and the busy time
    of a provider priced by the hour); ``replicas``, per provider given a list of
    replicas, how many answers each served; ``threshold`` says who missed the pass rate
    every row must reach (``None`` without one); ``categories``: a row per category × row."""

    columns: list[Column]
    rows: list[LeaderboardRow]
    leaders: list[str]
    totals: str
    threshold: str | None = None
    threshold_missed: bool = False
    replicas: list[str] = field(default_factory=list)
    categories: list[TableRow] = field(default_factory=list)
    category_columns: list[Column] = field(default_factory=lambda: list(CATEGORY_COLUMNS))

    def column(self, index: int) -> list[str]:
        """The cells of one column, a row each."""
        return [row.cells[index] for row in self.rows]

    @property
    def footer(self) -> list[str]:
        """What follows the table: the leaders, the totals, the answers each replica
        served and the threshold."""
        if not self.rows:
            return ["no results"]
        return [*self.leaders, self.totals, *self.replicas,
                *([self.threshold] if self.threshold else [])]


CATEGORY_COLUMNS = [
    Column("category", "category", text=True), Column("prompt", "prompt", text=True),
    Column("provider", "provider", text=True), Column("cases", "cases"),
    Column("pass_rate", "pass rate\n(95% CI)"), Column("score", "score"),
]


def _category_table(summary: Summary) -> list[TableRow]:
    return [TableRow(name := category_name(c.category), [
        name, c.prompt_id, c.provider_id, f"{c.cases:,}", rate(c), f"{c.score:.3f}"])
        for c in summary.categories]


def _leaderboard_cells(summary: Summary) -> list[tuple[Column, list[str]]]:
    """Each column with one cell per row, in the order the table shows them."""
    rows = summary.rows
    columns = [
        (Column("prompt", "prompt", text=True), [mark(r) + r.prompt_id for r in rows]),
        (Column("provider", "provider", text=True), [r.provider_id for r in rows]),
        (Column("pass_rate", "pass rate\n(95% CI)"), [rate(r) for r in rows]),
        (Column("score", "score"), [f"{r.score:.3f}" for r in rows]),
    ]
    if any(r.repeats > 1 for r in rows):
        columns.append((Column("flaky", "flaky\ncases"), [f"{r.flaky_cases:,}" for r in rows]))
    for name in summary.metric_names():
        columns.append((Column(f"metric:{name}", " ".join(name.split())),
                        [f"{r.metrics[name]:.3f}" if name in r.metrics else "—" for r in rows]))
    columns += [
        (Column("errors", "errors"), [f"{r.errors:,}" for r in rows]),
        (Column("latency", "latency\np50/p95"),
         [f"{seconds(r.latency_p50)}/{seconds(r.latency_p95)}" for r in rows]),
        (Column("ttft", "TTFT"), [seconds(r.ttft_p50) for r in rows]),
        (Column("tokens_per_s", "tok/s"),
         ["—" if r.tokens_per_s is None else f"{r.tokens_per_s:.1f}" for r in rows]),
        (Column("tokens", "tokens\nin/out"),
         [f"{count(r.input_tokens)}/{count(r.output_tokens)}" for r in rows]),
    ]
    # API calls per result, where some take several (self-consistency, conversations);
    # a cached answer made none.
    if any(r.requests > r.cases for r in rows):
        columns.append((Column("calls", "calls\n/case"),
                        [f"{r.requests / r.cases:.1f}" if r.cases else "—" for r in rows]))
    columns.append((Column("cost", "cost"), [money(r.cost) for r in rows]))
    return columns


def leaderboard_view(summary: Summary) -> LeaderboardView:
    """The leaderboard of ``summary`` as every presenter shows it."""
    columns = _leaderboard_cells(summary)
    rows = [LeaderboardRow(row.label, mark(row), row.best, row.meets_threshold is False,
                           [cells[index] for _, cells in columns])
            for index, row in enumerate(summary.rows)]
    cached = sum(row.cached for row in summary.rows)
    cost = money(summary.total_cost) if summary.total_cost is not None else "unknown"
    # How a cost by the hour came about: the provider's busy time (requests in flight
    # together counted once) × its rate.
    hourly = "; ".join(f"{spent.provider_id} busy {duration(spent.busy_s)} × "
                       f"${spent.per_hour:g}/h" for spent in summary.hourly.values())
    totals = (f"{summary.total_results:,} results ({cached:,} cached), "
              f"{summary.total_errors:,} errors, "
              f"{sum(row.requests for row in summary.rows):,} requests, cost {cost}"
              + (f" ({hourly})" if hourly else ""))
    view = LeaderboardView([column for column, _ in columns], rows, leader_lines(summary),
                           totals, categories=_category_table(summary),
                           replicas=replica_lines(summary))
    threshold = summary.rows[0].threshold if summary.rows else None
    if threshold is not None:
        failed = [row for row in summary.rows if row.meets_threshold is False]
        below = ", ".join(f"{row.label} ({row.pass_rate:.1%})" for row in failed)
        view.threshold = (f"threshold {threshold * 100:g}% NOT met by: {below}" if failed
                          else f"threshold {threshold * 100:g}% met by every row")
        view.threshold_missed = bool(failed)
    return view


def replica_lines(summary: Summary) -> list[str]:
    """Per provider given a list of replicas, the answers each served:
    ``gpt served by replicas: http://a/v1 12, http://b/v1 0``."""
    return [f"{provider} served by replicas: "
            + ", ".join(f"{url} {served:,}" for url, served in counts.items())
            for provider, counts in summary.replicas.items()]


def leader_lines(summary: Summary) -> list[str]:
    """Per provider with several variants: the ★ winner and its test, or the tie."""
    lines = []
    for provider in dict.fromkeys(row.provider_id for row in summary.rows):
        rows = [row for row in summary.rows if row.provider_id == provider]
        leader = next((row for row in rows if row.best or (row.tied and row.best_p is not None)),
                      None)
        if leader is None:
            continue
        if leader.best:
            beats = "the other variant" if len(rows) == 2 else \
                f"each of the {len(rows) - 1} other variants"
            lines.append(f"{BEST_MARK} best on {provider}: {leader.prompt_id} — "
                         f"{leader.pass_rate:.1%} pass, beats {beats} (one-sided paired "
                         f"test, p={leader.best_p:.3g} ≤ {summary.alpha:g})")
        else:
            tied = ", ".join(row.prompt_id for row in rows if row.tied)
            lines.append(f"{TIED_MARK} tied on {provider}: {tied} — the leader "
                         f"{leader.prompt_id} ({leader.pass_rate:.1%}) does not "
                         f"significantly beat them (p={leader.best_p:.3g} > "
                         f"{summary.alpha:g}); compare two with `promptkit ab`")
    return lines


# -- the comparison ----------------------------------------------------------------------

COMPARISON_COLUMNS = [
    Column("label", "prompt × provider", text=True), Column("cases", "cases"),
    Column("pass_rates", "pass before → now"), Column("change", "Δ pass rate (95% CI)"),
    Column("flips", "flips −/+"), Column("p_worse", "p worse (Holm)"),
    Column("detects", "sees drops ≥"), Column("verdict", "verdict"),
]
METRIC_COLUMNS = [
    Column("label", "prompt × provider", text=True), Column("metric", "metric", text=True),
    Column("before", "before"), Column("after", "now"), Column("change", "Δ mean (95% CI)"),
]


@dataclass
class TableRow:
    """A row of the comparison's tables: its cells in column order; ``tone`` says whether
    it got worse (or fell further than ``max_drop``) or better."""

    label: str
    cells: list[str]
    tone: Tone = ""


@dataclass
class Note:
    """A note on the comparison (``note``) or a warning about one row or side."""

    kind: Literal["note", "warning"]
    text: str


@dataclass
class FlipView:
    """A flipped case: ``change`` says how (``pass → FAIL``, ``2/2 pass → 1/2 pass``),
    ``sample_rates`` the share of passing samples when a side has repeats; ``before`` and
    ``after`` are the outputs (or errors) in full, ``None`` when there was none."""

    case_id: str
    label: str
    regressed: bool
    change: str
    sample_rates: str
    flaky: bool
    before: str | None
    after: str | None
    scores: str  # "1.000 → 0.000"


@dataclass
class FlipGroup:
    """The flips of one row in one direction, in case order."""

    kind: Literal["regressed", "fixed"]
    label: str
    flips: list[FlipView]


@dataclass
class ComparisonView:
    """A comparison as every presenter shows it.

    ``failed`` is what a gate would say: a significant regression, a row that fell more
    than ``max_drop``, or rows it could not compare. ``metric_note`` explains the ``*`` of
    the metric intervals, when one is shown.
    """

    before_label: str
    after_label: str
    rows: list[TableRow]
    metric_rows: list[TableRow]
    metric_note: str | None
    detection: list[str]
    notes: list[Note]
    flip_groups: list[FlipGroup]
    verdict: str
    failed: bool
    columns: list[Column] = field(default_factory=lambda: list(COMPARISON_COLUMNS))
    metric_columns: list[Column] = field(default_factory=lambda: list(METRIC_COLUMNS))

    @property
    def title(self) -> str:
        return f"{self.after_label} vs baseline {self.before_label}"

    @property
    def flips(self) -> list[FlipView]:
        """Every flipped case, regressions first."""
        return [flip for group in self.flip_groups for flip in group.flips]


def _signed(value: float, percent: bool) -> str:
    return f"{value * 100:+.1f}pp" if percent else f"{value:+.3f}"


def interval_text(change: MetricChange | Interval) -> str:
    """``-23.3pp (-40.0pp to -6.7pp)`` for the pass rate (a bare :class:`Interval` is a
    pass rate's), ``+0.120 (+0.010 to +0.230)`` for a score or metric."""
    percent = not isinstance(change, MetricChange) or change.name == PASS_RATE
    interval = change.change if isinstance(change, MetricChange) else change
    return (f"{_signed(interval.mean, percent)} "
            f"({_signed(interval.low, percent)} to {_signed(interval.high, percent)})")


def _table_row(row: RowComparison, comparison: Comparison) -> TableRow:
    delta = next((interval_text(m) for m in row.metrics if m.name == PASS_RATE), "—")
    tone: Tone = "worse" if row.verdict == "worse" or row.max_drop_exceeded else (
        "better" if row.verdict == "better" else "")
    rate = f"{row.before_rate:.1%} → {row.after_rate:.1%}" if row.cases else "—"
    sees = "—" if row.min_detectable_drop is None else f"{points(row.min_detectable_drop)}pp"
    # A test that could catch no drop has no verdict to give, not "no significant change".
    blind = row.min_detectable_drop is None and row.verdict == "no significant change"
    verdict = TOO_FEW if blind else row.verdict
    verdict += "" if row.gated else " (not gated)"
    if row.max_drop_exceeded:
        verdict += f"; fell > {comparison.max_drop:g}pp"
    return TableRow(row.label, [row.label, str(row.cases), rate, delta,
                                f"{len(row.regressed)}/{len(row.fixed)}",
                                f"{row.p_adjusted:.3g}", sees, verdict], tone)


def _metric_rows(comparison: Comparison) -> tuple[list[TableRow], str | None]:
    """Per row its score and metrics, then, for a gated row whose cases have categories,
    the pass rate per category (``pass rate · 天气 (8 cases, 2−/0+)``, with its flips)."""
    rows, starred = [], False
    for row in comparison.rows:
        shown = [(change.name, f"{change.before:.3f}", f"{change.after:.3f}", change.change,
                  interval_text(change)) for change in row.metrics if change.name != PASS_RATE]
        shown += [(f"{PASS_RATE} · {category_name(c.category)} ({c.cases:,} cases, "
                   f"{c.regressed}−/{c.fixed}+)", f"{c.before_rate:.1%}", f"{c.after_rate:.1%}",
                   c.change, interval_text(c.change)) for c in row.categories if row.gated]
        for name, before, after, interval, text in shown:
            star = " *" if interval.excludes_zero else ""
            starred = starred or bool(star)
            rows.append(TableRow(row.label, [row.label, name, before, after, text + star]))
    note = (f"* the interval excludes 0 (paired bootstrap, seed {comparison.seed}); shown "
            "for reading, the verdict is the pass/fail test") if starred else None
    return rows, note


def _notes(comparison: Comparison) -> list[Note]:
    return [*(Note("note", note) for note in comparison.warnings),
            *(Note("warning", f"{row.label}: {warning}")
              for row in comparison.rows for warning in row.warnings),
            *(Note("warning", f"{label} is only in the baseline; not compared")
              for label in comparison.only_before),
            *(Note("warning", f"{label} has no baseline; not compared")
              for label in comparison.only_after)]


def _samples(outcome: SideCase) -> str:
    if outcome.samples == 1:
        return "pass" if outcome.passed else "fail"
    answered = outcome.answered
    return f"{sum(answered)}/{len(answered)} pass"


def flip_view(flip: Flip, row: RowComparison) -> FlipView:
    """One flipped case of ``row`` as shown."""
    before, after = flip.before, flip.after
    repeated = before.samples > 1 or after.samples > 1
    if repeated:
        change = f"{_samples(before)} → {_samples(after)}"
    else:
        change = "pass → FAIL" if flip.regressed else "fail → pass"
    rates = f"{before.pass_rate:.0%} → {after.pass_rate:.0%} of samples" if repeated else ""
    return FlipView(flip.case_id, row.label, flip.regressed, change, rates, flip.flaky,
                    before.error or before.output, after.error or after.output,
                    f"{before.score:.3f} → {after.score:.3f}")


def comparison_view(comparison: Comparison) -> ComparisonView:
    """The comparison as every presenter shows it."""
    groups = [FlipGroup(kind, row.label, [flip_view(flip, row) for flip in flips])
              for kind in ("regressed", "fixed") for row in comparison.rows
              if (flips := row.regressed if kind == "regressed" else row.fixed)]
    metric_rows, metric_note = _metric_rows(comparison)
    failed = comparison.regressed or bool(comparison.dropped) or bool(comparison.cannot_vouch())
    return ComparisonView(
        comparison.before_label, comparison.after_label,
        [_table_row(row, comparison) for row in comparison.rows], metric_rows, metric_note,
        detection_lines(comparison), _notes(comparison), groups, verdict_line(comparison),
        failed)


def detection_lines(comparison: Comparison) -> list[str]:
    """What each gated row's test could have caught, one line per distinct case count."""
    by_cases: dict[int, list[RowComparison]] = {}
    for row in comparison.gated:
        by_cases.setdefault(row.cases, []).append(row)
    lines = []
    for cases, rows in by_cases.items():
        drop = rows[0].min_detectable_drop
        which = "this gate" if len(comparison.gated) == 1 else \
            ("each gated row" if len(rows) == len(comparison.gated) else
             ", ".join(printable_line(r.label) for r in rows))
        if drop is None:
            lines.append(f"with {cases} cases {which} cannot catch any drop at "
                         f"{comparison.level} (too few cases); see --max-drop")
        else:
            lines.append(f"with {cases} cases {which} sees drops of {points(drop)} points or "
                         f"more (80% power, {comparison.level})")
    return lines


def _no_failure(comparison: Comparison) -> str:
    """The verdict when no check failed: what the test found and what it could have
    found, so "no significant change" from a test that could catch a 25-point drop reads
    apart from a row too small to test (which only ``max_drop`` can guard)."""
    powered = [row for row in comparison.gated if row.min_detectable_drop is not None]
    clauses = []
    better = [printable_line(row.label) for row in comparison.gated if row.verdict == "better"]
    if powered or not comparison.blind:
        clauses.append(f"better ({', '.join(better)}); no significant regression" if better
                       else f"no significant change at alpha {comparison.alpha:g}")
    if powered:
        drop = max(row.min_detectable_drop or 0.0 for row in powered)
        where = " in each gated row" if len(powered) > 1 else ""
        clauses[-1] += (f" (the gate could have detected a drop of {points(drop)} points "
                        f"or more{where})")
    if comparison.blind:  # only with max_drop: else the gate cannot vouch for them
        rows = ", ".join(f"{printable_line(row.label)} ({row.cases} cases)"
                         for row in comparison.blind)
        clauses.append(f"too few paired cases for the test to detect any drop in {rows}")
    if comparison.max_drop is not None and comparison.gated:
        clauses.append(f"no gated row fell more than {comparison.max_drop:g} points")
    return "verdict: " + "; ".join(clauses)


def verdict_line(comparison: Comparison) -> str:
    """One line: the overall verdict, as CI logs should show it.

    A failed check (a significant regression, a fall past ``max_drop``, a comparison the
    gate cannot vouch for, such as too few paired cases to detect any drop) is named;
    otherwise the line says what the gate could have detected.
    """
    if not comparison.rows:
        return "verdict: nothing to compare (no prompt × provider in common)"
    parts = []
    worse = comparison.worse
    if worse:
        rows = [f"{printable_line(row.label)} ({len(row.regressed)} worse, {len(row.fixed)} "
                f"better, p={row.p_adjusted:.3g})" for row in worse]
        parts.append(f"verdict: WORSE at alpha {comparison.alpha:g} (one-sided, Holm over "
                     f"{len(comparison.gated)} gated row(s)): " + "; ".join(rows))
    dropped = comparison.dropped
    if dropped:
        rows = [f"{printable_line(row.label)} fell {row.drop:.1f} points" for row in dropped]
        parts.append(f"max-drop: more than {comparison.max_drop:g} points: " + "; ".join(rows))
    unvouched = comparison.cannot_vouch()
    if unvouched:
        parts.append("cannot vouch: " + "; ".join(printable_line(u) for u in unvouched))
    return " | ".join(parts) if parts else _no_failure(comparison)
