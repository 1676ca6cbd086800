"""Paired comparison of two sides (runs or baselines) on the same cases, and its verdict.

:func:`compare` matches rows by prompt × provider and cases by id, then per row:

* a **one-sided** paired test of "worse" (and, separately, of "better") on the per-case
  pass fractions: the exact McNemar test when each case has one sample, the sign-flip
  test on the per-case differences when cases have repeats (a case counts once);
* Holm's adjustment across the **gated** rows (``gate:`` in the spec picks them, default
  all), so a matrix of many rows does not raise more false alarms than ``alpha`` says;
* ``min_detectable_drop``: the drop, in points, this row's test catches with 80% power
  (each case flipping pass → fail with that probability, none back), at ``alpha``
  divided by the number of gated rows;
* seeded paired bootstrap intervals on the change of the pass rate, the score and each
  metric, and per case category when cases have one (for reading; they do not gate),
  and the flipped cases, regressions first;
* with ``max_drop``, a plain guard: a gated row whose pass rate fell by more than that
  many points fails, whatever the test says (for datasets too small to test).

A gate cannot vouch for a comparison (:meth:`Comparison.cannot_vouch`) when a gated row
compared fewer than half of its baseline's cases, or, without ``max_drop``, too few for
its test to catch a drop of any size: then "no significant change" would be no evidence.

Cases the endpoint or a grader never answered are left out (an outage says nothing about
the prompt); a case keeps the samples that were answered.

This module computes and prints nothing: the tables, flipped cases and verdict line are
:mod:`promptkit.reporting.views`', shown by the terminal, HTML and Markdown presenters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .baseline import Side, SideCase, SideRow
from .stats import (
    Interval,
    holm,
    min_detectable_drop,
    paired_bootstrap,
    paired_bootstraps,
    paired_pass_test,
)

Verdict = Literal["better", "worse", "no significant change"]
PASS_RATE = "pass rate"
SCORE = "score"
POWER = 0.8  # of min_detectable_drop
MIN_COMPARED = 0.5
"""A gated row whose paired cases are fewer than this share of the baseline's cases (lost
to outages, or missing because case ids changed) cannot be vouched for: a gate that
asked for a verdict fails on it rather than pass on what is left."""


@dataclass
class Flip:
    """A case whose pass fraction changed (with one sample: passed on one side only)."""

    case_id: str
    before: SideCase
    after: SideCase

    @property
    def regressed(self) -> bool:
        return self.after.pass_rate < self.before.pass_rate

    @property
    def flaky(self) -> bool:
        """Its repeats disagreed on either side: the flip may be noise."""
        return self.before.flaky or self.after.flaky


@dataclass
class MetricChange:
    """The mean of one metric on the paired cases, before and after, and the interval."""

    name: str
    before: float
    after: float
    change: Interval
    cases: int


@dataclass
class CategoryChange:
    """One category of a row's paired cases: its pass rate before and after, the change
    with its paired bootstrap interval (for reading; the verdict is the row's test), and
    how many of its cases got worse or better. ``category`` is ``None`` for cases without
    one."""

    category: str | None
    cases: int
    before_rate: float
    after_rate: float
    change: Interval
    regressed: int
    fixed: int


@dataclass
class RowComparison:
    """One prompt × provider compared; ``before_*`` is the baseline side.

    ``p_worse`` / ``p_better`` are one-sided p-values; ``p_adjusted`` /
    ``p_better_adjusted`` are Holm-adjusted across the gated rows (a row that does not
    gate keeps its own p). Rates are means of per-case pass fractions over the paired
    cases; ``drop`` is ``before_rate - after_rate`` in points.
    """

    prompt_id: str
    provider_id: str
    before_provider_id: str
    cases: int  # paired cases
    only_before: int
    only_after: int
    before_rate: float
    after_rate: float
    regressed: list[Flip]
    fixed: list[Flip]
    p_worse: float
    p_better: float
    test: str = "mcnemar"
    gated: bool = True
    p_adjusted: float = 1.0
    p_better_adjusted: float = 1.0
    min_detectable_drop: float | None = None  # points
    max_drop_exceeded: bool = False
    baseline_cases: int = 0  # the baseline row's cases, compared or not
    lost_to_outages: int = 0  # cases in both, left out because a side was never answered
    metrics: list[MetricChange] = field(default_factory=list)
    categories: list[CategoryChange] = field(default_factory=list)  # when cases have one
    verdict: Verdict = "no significant change"
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.prompt_id} × {self.provider_id}"

    @property
    def drop(self) -> float:
        """How far the pass rate fell, in points (negative when it rose)."""
        return (self.before_rate - self.after_rate) * 100

    @property
    def undecided(self) -> bool:
        """Too few of the baseline's cases were compared for a verdict to mean anything."""
        return self.cases < MIN_COMPARED * self.baseline_cases or self.cases == 0

    def undecided_reason(self) -> str:
        missing = self.baseline_cases - self.cases - self.lost_to_outages
        return (f"only {self.cases} of {self.baseline_cases} baseline cases of {self.label} "
                f"could be compared ({self.lost_to_outages} lost to outages, {missing} not "
                "in this run: did case ids change?)")


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
    max_drop: float | None = None

    @property
    def gated(self) -> list[RowComparison]:
        return [row for row in self.rows if row.gated]

    @property
    def worse(self) -> list[RowComparison]:
        return [row for row in self.gated if row.verdict == "worse"]

    @property
    def regressed(self) -> bool:
        """Whether a gated row got significantly worse: what ``--fail-on-regression``
        gates."""
        return bool(self.worse)

    @property
    def dropped(self) -> list[RowComparison]:
        """Gated rows whose pass rate fell by more than ``max_drop`` points."""
        return [row for row in self.gated if row.max_drop_exceeded]

    @property
    def level(self) -> str:
        """The level each gated row is tested at: ``one-sided alpha 0.05`` (``/3`` with
        three gated rows: Holm's first step)."""
        gated = len(self.gated)
        return f"one-sided alpha {self.alpha:g}" + (f"/{gated}" if gated > 1 else "")

    @property
    def blind(self) -> list[RowComparison]:
        """Gated rows compared on cases, but too few for their test to catch a drop of
        any size (``min_detectable_drop`` is ``None``): "no significant change" there
        means nothing."""
        return [row for row in self.gated
                if row.cases and not row.undecided and row.min_detectable_drop is None]

    def uncompared(self) -> list[str]:
        """Why a gate cannot vouch for what it compared: no row in common, or a gated row
        with too few of its baseline cases compared (empty when the comparison is sound)."""
        if not self.rows:
            return ["no prompt × provider of the baseline is in this run"]
        return [row.undecided_reason() for row in self.gated if row.undecided]

    def cannot_vouch(self) -> list[str]:
        """Why a gate cannot vouch for this comparison: :meth:`uncompared`, and, unless
        ``max_drop`` guards the rows, each :attr:`blind` row, whose test could not have
        caught a drop of any size (empty when the gate can vouch)."""
        reasons = self.uncompared()
        if self.max_drop is None:
            reasons += [f"too few paired cases to detect a drop: with {row.cases} cases of "
                        f"{row.label} no drop can be significant at {self.level} (add cases, "
                        "or gate with --max-drop)" for row in self.blind]
        return reasons


def gate_failures(comparison: Comparison, *, fail_on_regression: bool,
                  max_drop: float | None) -> list[str]:
    """The gate checks a comparison fails, one line each (empty: it passes).

    ``fail_on_regression`` gates on a significant regression; ``max_drop`` (points) on a
    gated row falling further. Either also fails a comparison the gate cannot vouch for
    (:meth:`Comparison.cannot_vouch`): rows not compared, and, without ``max_drop``, rows
    with too few paired cases for the test to catch any drop, where a passing
    ``fail_on_regression`` would vouch for nothing.
    """
    failed = []
    if fail_on_regression and comparison.regressed:
        rows = ", ".join(f"{row.label} (p={row.p_adjusted:.3g})" for row in comparison.worse)
        failed.append(f"regression: significantly worse than the baseline: {rows}")
    if max_drop is not None and comparison.dropped:
        rows = ", ".join(f"{row.label} fell {row.drop:.1f} points" for row in comparison.dropped)
        failed.append(f"max-drop: more than {max_drop:g} points: {rows}")
    if fail_on_regression or max_drop is not None:
        reasons = comparison.cannot_vouch() if max_drop is None else comparison.uncompared()
        failed += [f"comparison: {reason}; the gate cannot vouch for it" for reason in reasons]
    return failed


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


def _metric_changes(pairs: list[tuple[SideCase, SideCase]], seed: int,
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


def _category_changes(pairs: list[tuple[SideCase, SideCase]], seed: int,
                      resamples: int) -> list[CategoryChange]:
    """The pass rate's change per category of the paired cases (the candidate's category
    of a case, else the baseline's), in case order, the cases without one last; empty
    when no case has a category."""
    groups: dict[str | None, list[tuple[SideCase, SideCase]]] = {}
    for old, new in pairs:
        name = new.category if new.category is not None else old.category
        groups.setdefault(name, []).append((old, new))
    if set(groups) <= {None}:
        return []
    changes = []
    for name in sorted(groups, key=lambda name: name is None):  # stable: case order
        before = [old.pass_rate for old, _ in groups[name]]
        after = [new.pass_rate for _, new in groups[name]]
        changes.append(CategoryChange(
            name, len(before), sum(before) / len(before), sum(after) / len(after),
            paired_bootstrap(before, after, seed=seed, resamples=resamples),
            regressed=sum(a < b for b, a in zip(before, after, strict=True)),
            fixed=sum(a > b for b, a in zip(before, after, strict=True))))
    return changes


def compare_rows(b: SideRow, a: SideRow, *, seed: int = 0, resamples: int = 2000,
                 settings: bool = True) -> RowComparison:
    """Compare one row's cases (not yet adjusted for other rows: see :func:`compare`).

    ``settings=False`` leaves out the warnings about changed templates, models and
    params (expected when two variants of one run are compared).
    """
    shared = [cid for cid in a.cases if cid in b.cases]
    common = [cid for cid in shared if b.cases[cid].is_answered and a.cases[cid].is_answered]
    pairs = [(b.cases[cid], a.cases[cid]) for cid in common]
    flips = [Flip(cid, old, new) for cid, (old, new) in zip(common, pairs, strict=True)
             if old.pass_rate != new.pass_rate]
    before_rates = [old.pass_rate for old, _ in pairs]
    after_rates = [new.pass_rate for _, new in pairs]
    p_worse, p_better, test = paired_pass_test(before_rates, after_rates, seed=seed)
    n = len(pairs)
    row = RowComparison(
        a.prompt_id, a.provider_id, b.provider_id, n,
        only_before=sum(cid not in a.cases for cid in b.cases),
        only_after=len(a.cases) - len(shared),
        before_rate=sum(before_rates) / n if n else 0.0,
        after_rate=sum(after_rates) / n if n else 0.0,
        regressed=[f for f in flips if f.regressed], fixed=[f for f in flips if not f.regressed],
        p_worse=p_worse, p_better=p_better, test=test,
        metrics=_metric_changes(pairs, seed, resamples) if pairs else [],
        categories=_category_changes(pairs, seed, resamples),
        warnings=_setting_warnings(b, a) if settings else [],
        baseline_cases=len(b.cases), lost_to_outages=len(shared) - len(common))
    lost = len(shared) - len(common)
    partly = sum(1 for old, new in pairs if None in old.passes or None in new.passes)
    if lost:
        row.warnings.append(f"{lost} case(s) the endpoint or a grader did not answer (rate "
                            "limit, server error, timeout, lost connection) were left out")
    if partly:
        row.warnings.append(f"{partly} case(s) lost some samples to an outage; their "
                            "answered samples were compared")
    if not common:
        row.warnings.append("no cases in common: nothing to compare")
    elif row.only_before or row.only_after:
        row.warnings.append(f"{row.only_before} case(s) only in the baseline and "
                            f"{row.only_after} only now were left out")
    return row


def gate_selects(gate: Mapping[str, Any] | None, prompt_id: str, provider_id: str) -> bool:
    """Whether a spec's ``gate:`` (``{prompts: [...], providers: [...]}``) picks a row."""
    if not gate:
        return True
    prompts, providers = gate.get("prompts"), gate.get("providers")
    return ((prompts is None or prompt_id in prompts)
            and (providers is None or provider_id in providers))


def compare(before: Side, after: Side, *, alpha: float = 0.05, seed: int = 0,
            resamples: int = 2000, gate: Mapping[str, Any] | None = None,
            max_drop: float | None = None, settings: bool = True) -> Comparison:
    """Compare ``after`` (the candidate) with ``before`` (the baseline), row by row.

    Args:
        before: The baseline side.
        after: The side under test.
        alpha: Significance level of the verdict, after Holm's adjustment across the
            gated rows.
        seed: Seeds the bootstrap and sampled sign-flip tests: same inputs, same numbers.
        resamples: Bootstrap samples per interval.
        gate: Which rows gate (``{"prompts": [...], "providers": [...]}``); default the
            candidate's ``gate``, else the baseline's, else every row.
        max_drop: Points a gated row's pass rate may fall before it fails the max-drop
            check (``None``: no such check).
        settings: Warn when templates, models or params differ between the sides.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if max_drop is not None and not 0 <= max_drop <= 100:
        raise ValueError(f"max_drop must be between 0 and 100 points, got {max_drop}")
    gate = gate if gate is not None else (after.gate or before.gate)
    pairs, notes = _pairs(before, after)
    rows = [compare_rows(b, a, seed=seed, resamples=resamples, settings=settings)
            for b, a in pairs]
    for row in rows:
        row.gated = gate_selects(gate, row.prompt_id, row.provider_id)
    gated = [row for row in rows if row.gated]
    for row, worse, better in zip(gated, holm([r.p_worse for r in gated]),
                                  holm([r.p_better for r in gated]), strict=True):
        row.p_adjusted, row.p_better_adjusted = worse, better
    for row in rows:
        if not row.gated:
            row.p_adjusted, row.p_better_adjusted = row.p_worse, row.p_better
        row_alpha = alpha / max(1, len(gated)) if row.gated else alpha
        drop = min_detectable_drop(row.cases, row_alpha, POWER) if row.cases else None
        row.min_detectable_drop = None if drop is None else drop * 100
        if row.p_adjusted <= alpha:
            row.verdict = "worse"
        elif row.p_better_adjusted <= alpha:
            row.verdict = "better"
        row.max_drop_exceeded = (max_drop is not None and row.gated and row.cases > 0
                                 and row.drop > max_drop + 1e-9)
    if gate:
        left_out = [row.label for row in rows if not row.gated]
        if left_out:
            notes.append(f"not gated (gate: in the spec): {', '.join(left_out)}")
    matched_before = {(b.prompt_id, b.provider_id) for b, _ in pairs}
    matched_after = {(a.prompt_id, a.provider_id) for _, a in pairs}
    return Comparison(
        before.label, after.label, rows,
        only_before=[r.label for r in before.rows
                     if (r.prompt_id, r.provider_id) not in matched_before],
        only_after=[r.label for r in after.rows
                    if (r.prompt_id, r.provider_id) not in matched_after],
        alpha=alpha, seed=seed, warnings=notes, max_drop=max_drop)
