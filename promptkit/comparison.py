"""Paired comparison of two sides (runs or baselines) on the same cases, and its verdict.

:func:`compare` matches rows by prompt × provider and cases by id, then per row: the
exact McNemar test on pass/fail flips, a seeded paired bootstrap interval on the mean
difference of the pass rate, the score and each metric, the flipped cases and a verdict.
The verdict comes from the McNemar p-value after Holm's adjustment across rows, so a
matrix of many rows does not raise more false alarms than ``alpha`` says. Metric
intervals are shown for reading; they do not gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .baseline import CaseOutcome, Side, SideRow
from .stats import Interval, holm, mcnemar_exact, paired_bootstrap, paired_bootstraps

Verdict = Literal["better", "worse", "no significant change"]
PASS_RATE = "pass rate"
SCORE = "score"


@dataclass
class Flip:
    """A case that passed on one side and failed on the other."""

    case_id: str
    before: CaseOutcome
    after: CaseOutcome

    @property
    def regressed(self) -> bool:
        return self.before.passed and not self.after.passed


@dataclass
class MetricChange:
    """The mean of one metric on the paired cases, before and after, and the interval."""

    name: str
    before: float
    after: float
    change: Interval
    cases: int


@dataclass
class RowComparison:
    """One prompt × provider compared; ``before_*`` is the baseline side."""

    prompt_id: str
    provider_id: str
    before_provider_id: str
    cases: int  # paired cases
    only_before: int
    only_after: int
    before_passed: int
    after_passed: int
    regressed: list[Flip]
    fixed: list[Flip]
    p_value: float
    p_adjusted: float = 1.0
    metrics: list[MetricChange] = field(default_factory=list)
    verdict: Verdict = "no significant change"
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.prompt_id} × {self.provider_id}"


@dataclass
class Comparison:
    """Every matched row, the rows found on one side only, and the test settings."""

    before_label: str
    after_label: str
    rows: list[RowComparison]
    only_before: list[str]
    only_after: list[str]
    alpha: float
    seed: int
    warnings: list[str] = field(default_factory=list)

    @property
    def worse(self) -> list[RowComparison]:
        return [row for row in self.rows if row.verdict == "worse"]

    @property
    def regressed(self) -> bool:
        """Whether any row got significantly worse: what ``--fail-on-regression`` gates."""
        return bool(self.worse)


def _pairs(before: Side, after: Side) -> tuple[list[tuple[SideRow, SideRow]], list[str]]:
    """Match rows by prompt × provider; with one provider on each side under different
    ids (a baseline from one model, a run against another), match by prompt alone."""
    notes: list[str] = []
    pairs = [(b, a) for a in after.rows
             if (b := before.row(a.prompt_id, a.provider_id)) is not None]
    before_providers = {r.provider_id for r in before.rows}
    after_providers = {r.provider_id for r in after.rows}
    if not pairs and len(before_providers) == 1 and len(after_providers) == 1:
        (old,), (new,) = before_providers, after_providers
        pairs = [(b, a) for a in after.rows if (b := before.row(a.prompt_id, old)) is not None]
        if pairs:
            notes.append(f"provider {new!r} compared with the baseline's provider {old!r}")
    return pairs, notes


def _setting_warnings(b: SideRow, a: SideRow) -> list[str]:
    warnings = []
    if b.template_sha256 and a.template_sha256 and b.template_sha256 != a.template_sha256:
        old = ", ".join(h[:12] for h in b.template_sha256)
        new = ", ".join(h[:12] for h in a.template_sha256)
        what = f"{b.template} → {a.template}" if b.template != a.template else a.template
        warnings.append(f"template changed ({what}; sha256 {old} → {new})")
    if b.model != a.model:
        warnings.append(f"model changed ({b.model} → {a.model})")
    changed = sorted(k for k in {*b.params, *a.params} if b.params.get(k) != a.params.get(k))
    if changed:
        parts = [f"{k} {b.params.get(k, '—')!r} → {a.params.get(k, '—')!r}" for k in changed]
        warnings.append(f"params changed ({'; '.join(parts)})")
    return warnings


def _metric_changes(pairs: list[tuple[CaseOutcome, CaseOutcome]], seed: int,
                    resamples: int) -> list[MetricChange]:
    columns: dict[str, tuple[list[float], list[float]]] = {
        PASS_RATE: ([b.pass_rate for b, _ in pairs], [a.pass_rate for _, a in pairs]),
        SCORE: ([b.score for b, _ in pairs], [a.score for _, a in pairs]),
    }
    names = dict.fromkeys(name for b, a in pairs for name in b.metrics if name in a.metrics)
    for name in names:
        both = [(b.metrics[name], a.metrics[name]) for b, a in pairs
                if name in b.metrics and name in a.metrics]
        columns[name] = ([x for x, _ in both], [y for _, y in both])
    # Metrics every paired case has are resampled together (one draw of cases for all).
    full = [name for name, (before, _) in columns.items() if len(before) == len(pairs)]
    intervals = dict(zip(full, paired_bootstraps([columns[name] for name in full],
                                                 seed=seed, resamples=resamples), strict=True))
    changes = []
    for name, (before, after) in columns.items():
        if not before:
            continue
        interval = intervals.get(name) or paired_bootstrap(before, after, seed=seed,
                                                           resamples=resamples)
        changes.append(MetricChange(name, sum(before) / len(before), sum(after) / len(after),
                                    interval, len(before)))
    return changes


def compare_rows(b: SideRow, a: SideRow, *, seed: int = 0, resamples: int = 2000
                 ) -> RowComparison:
    """Compare one row's cases (not yet adjusted for other rows: see :func:`compare`)."""
    shared = [cid for cid in a.cases if cid in b.cases]
    common = [cid for cid in shared if b.cases[cid].answered and a.cases[cid].answered]
    pairs = [(b.cases[cid], a.cases[cid]) for cid in common]
    flips = [Flip(cid, old, new) for cid, (old, new) in zip(common, pairs, strict=True)
             if old.passed != new.passed]
    regressed = [f for f in flips if f.regressed]
    fixed = [f for f in flips if not f.regressed]
    row = RowComparison(
        a.prompt_id, a.provider_id, b.provider_id, len(common),
        only_before=sum(cid not in a.cases for cid in b.cases),
        only_after=len(a.cases) - len(shared),
        before_passed=sum(old.passed for old, _ in pairs),
        after_passed=sum(new.passed for _, new in pairs),
        regressed=regressed, fixed=fixed,
        p_value=mcnemar_exact(len(regressed), len(fixed)),
        metrics=_metric_changes(pairs, seed, resamples) if pairs else [],
        warnings=_setting_warnings(b, a))
    if len(common) < len(shared):
        row.warnings.append(f"{len(shared) - len(common)} case(s) the endpoint did not answer "
                            "(rate limit, server error, timeout, lost connection) were left "
                            "out")
    if not common:
        row.warnings.append("no cases in common: nothing to compare")
    elif row.only_before or row.only_after:
        row.warnings.append(f"{row.only_before} case(s) only in the baseline and "
                            f"{row.only_after} only now were left out")
    return row


def compare(before: Side, after: Side, *, alpha: float = 0.05, seed: int = 0,
            resamples: int = 2000) -> Comparison:
    """Compare ``after`` (the candidate) with ``before`` (the baseline), row by row.

    Args:
        before: The baseline side.
        after: The side under test.
        alpha: Significance level of the verdict, after Holm's adjustment across rows.
        seed: Seeds the bootstrap; the same inputs and seed give the same intervals.
        resamples: Bootstrap samples per interval.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    pairs, notes = _pairs(before, after)
    rows = [compare_rows(b, a, seed=seed, resamples=resamples) for b, a in pairs]
    for row, adjusted in zip(rows, holm([row.p_value for row in rows]), strict=True):
        row.p_adjusted = adjusted
        if adjusted < alpha:
            row.verdict = "worse" if len(row.regressed) > len(row.fixed) else "better"
    matched_before = {(b.prompt_id, b.provider_id) for b, _ in pairs}
    matched_after = {(a.prompt_id, a.provider_id) for _, a in pairs}
    return Comparison(
        before.label, after.label, rows,
        only_before=[r.label for r in before.rows
                     if (r.prompt_id, r.provider_id) not in matched_before],
        only_after=[r.label for r in after.rows
                    if (r.prompt_id, r.provider_id) not in matched_after],
        alpha=alpha, seed=seed, warnings=notes)


# -- printing ------------------------------------------------------------------------


def _signed(value: float, percent: bool) -> str:
    return f"{value * 100:+.1f}pp" if percent else f"{value:+.3f}"


def _change(change: MetricChange) -> str:
    percent = change.name == PASS_RATE
    interval = change.change
    return (f"{_signed(interval.mean, percent)} "
            f"({_signed(interval.low, percent)} to {_signed(interval.high, percent)})")


def _short(text: str | None, limit: int = 240) -> str:
    if text is None:
        return "(no output)"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def flip_lines(comparison: Comparison, limit: int | None = 50) -> list[str]:
    """The flipped cases as plain lines, regressions (pass → fail) first."""
    lines: list[str] = []
    for kind in ("regressed", "fixed"):
        for row in comparison.rows:
            flips = row.regressed if kind == "regressed" else row.fixed
            shown = flips if limit is None else flips[:limit]
            for flip in shown:
                arrow = "pass → FAIL" if kind == "regressed" else "fail → pass"
                lines.append(f"{arrow}  {flip.case_id}  ({row.label})")
                lines.append(f"    before: {_short(flip.before.error or flip.before.output)}")
                lines.append(f"    now:    {_short(flip.after.error or flip.after.output)}")
            if len(flips) > len(shown):
                lines.append(f"    ... and {len(flips) - len(shown)} more {kind} in "
                             f"{row.label}")
    return lines


def verdict_line(comparison: Comparison) -> str:
    """One line: the overall verdict, as CI logs should show it."""
    if not comparison.rows:
        return "verdict: nothing to compare (no prompt × provider in common)"
    worse = comparison.worse
    if worse:
        parts = [f"{row.label} ({len(row.regressed)} pass → fail, {len(row.fixed)} "
                 f"fail → pass, p={row.p_adjusted:.3g})" for row in worse]
        return f"verdict: WORSE at alpha {comparison.alpha:g}: " + "; ".join(parts)
    better = [row.label for row in comparison.rows if row.verdict == "better"]
    if better:
        return f"verdict: better ({', '.join(better)}); no significant regression"
    return f"verdict: no significant change at alpha {comparison.alpha:g}"


def print_comparison(comparison: Comparison, console: Console, flips: int | None = 50
                     ) -> None:
    """Print the per-row table, the metric intervals, warnings and flipped cases."""
    table = Table(title=f"{comparison.after_label} vs baseline {comparison.before_label}",
                  title_justify="left", box=None, header_style="bold", padding=(0, 1, 0, 0))
    for header in ("prompt × provider", "cases", "pass before → now", "Δ pass rate (95% CI)",
                   "flips −/+", "p (Holm)", "verdict"):
        table.add_column(header, justify="left" if header.startswith("prompt") else "right")
    for row in comparison.rows:
        delta = next((_change(m) for m in row.metrics if m.name == PASS_RATE), "—")
        style = {"worse": "bold red", "better": "green"}.get(row.verdict, "")
        rate = (f"{row.before_passed / row.cases:.1%} → {row.after_passed / row.cases:.1%}"
                if row.cases else "—")
        table.add_row(Text(row.label), str(row.cases), rate, delta,
                      f"{len(row.regressed)}/{len(row.fixed)}", f"{row.p_adjusted:.3g}",
                      row.verdict, style=style)
    console.print(table)
    metrics = Table(box=None, header_style="bold", padding=(0, 1, 0, 0))
    for header in ("prompt × provider", "metric", "before", "now", "Δ mean (95% CI)"):
        metrics.add_column(header, justify="left" if header[0] in "pm" else "right")
    for row in comparison.rows:
        for change in row.metrics:
            if change.name == PASS_RATE:
                continue
            mark = " *" if change.change.excludes_zero else ""
            metrics.add_row(Text(row.label), Text(change.name), f"{change.before:.3f}",
                            f"{change.after:.3f}", _change(change) + mark)
    if metrics.row_count:
        console.print(metrics)
    if any(m.change.excludes_zero for row in comparison.rows for m in row.metrics
           if m.name != PASS_RATE):
        console.print("* the interval excludes 0 (paired bootstrap, seed "
                      f"{comparison.seed}); shown for reading, the verdict is the pass/fail "
                      "test", highlight=False)
    for note in comparison.warnings:
        console.print(Text(f"note: {note}"))
    for row in comparison.rows:
        for warning in row.warnings:
            console.print(Text(f"warning: {row.label}: {warning}", style="yellow"))
    for label in comparison.only_before:
        console.print(Text(f"warning: {label} is only in the baseline; not compared",
                           style="yellow"))
    for label in comparison.only_after:
        console.print(Text(f"warning: {label} has no baseline; not compared",
                           style="yellow"))
    lines = flip_lines(comparison, flips)
    if lines:
        console.print(Text("flipped cases:", style="bold"))
        for line in lines:
            console.print(Text(line), highlight=False)
    console.print(Text(verdict_line(comparison),
                       style="bold red" if comparison.regressed else "bold"))
