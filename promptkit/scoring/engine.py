"""Scoring one model output against an eval's assertions.

:func:`score` looks each assertion's type up in the registry
(:mod:`promptkit.scoring.registry`), renders its texts with the case's fields, runs the
handlers concurrently, applies ``not-``, and combines the results by weight and metric.
It never raises for a bad output, a failing judge or a handler that fails: the problem
becomes an :class:`AssertionResult` with ``error`` set, which fails the assertion and the
case. Only a grader outage (:class:`~promptkit.errors.GraderOutage`) and a template error
(the eval's input is wrong) propagate.

``not-<type>`` inverts ``passed`` and turns ``score`` into ``1 - score`` (an error still
fails).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import GraderOutage, TemplateError
from . import registry
from .assertion import Assertion
from .context import Output, ScoringContext
from .verdicts import EvaluationError, GradingResult, unit_score

__all__ = ["AssertionResult", "CaseScore", "merge_scores", "score"]


@dataclass
class AssertionResult:
    """The outcome of one assertion; ``error`` is set when it could not be evaluated."""

    type: str
    metric: str
    passed: bool
    score: float
    weight: float
    reason: str
    error: str | None = None


@dataclass
class CaseScore:
    """The outcome of all assertions on one output.

    Attributes:
        passed: Every assertion with a weight above 0 passed (none errored); an
            assertion of weight 0 is informational: reported, never failing the case.
        score: The weighted mean of the assertion scores (1.0 with no assertions, or
            only assertions of weight 0).
        results: One result per assertion, in order.
        metrics: Metric name -> weighted mean score of the assertions under that name.
            Assertions that errored are left out: their metric is unknown, not 0.
    """

    passed: bool
    score: float
    results: list[AssertionResult]
    metrics: dict[str, float] = field(default_factory=dict)


async def _evaluate(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """Evaluate one assertion with its type's handler, ignoring ``not-``."""
    kind = a.base_type
    registered = registry.lookup(kind)
    if registered is None:  # unregistered after the spec was loaded
        raise EvaluationError(f"unknown assertion type {kind!r}")
    rendered = a.rendered(lambda text: ctx.render(text, ctx.vars))
    verdict = registered.handler(rendered, output, ctx)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    if not isinstance(verdict, GradingResult):
        raise EvaluationError(f"the {kind} handler returned {type(verdict).__name__}, "
                              "not a GradingResult")
    passed = bool(verdict.passed)
    return GradingResult(passed, unit_score(verdict.score, passed, f"the {kind} handler"),
                         str(verdict.reason))


async def _result(a: Assertion, output: Output, ctx: ScoringContext) -> AssertionResult:
    try:
        verdict = await _evaluate(a, output, ctx)
    except (GraderOutage, TemplateError):
        raise  # not this assertion's verdict: the case is left out, or the input is wrong
    except EvaluationError as exc:
        error = str(exc)
    except Exception as exc:  # a user function or a provider failed: record, don't abort the run
        error = f"{type(exc).__name__}: {exc}"
    else:
        passed, value = verdict.passed, float(verdict.score or 0.0)
        if a.negated:
            passed, value = not passed, 1.0 - value
        return AssertionResult(a.type, a.metric_name, passed, value, a.weight, verdict.reason)
    return AssertionResult(a.type, a.metric_name, False, 0.0, a.weight, "", error=error)


def _case_score(results: Sequence[AssertionResult]) -> float:
    """The weighted mean score; 1.0 when every weight is 0 (informational checks only
    count in the score as no checks do)."""
    if not any(r.weight > 0 for r in results):
        return 1.0
    return _weighted_mean(results)


def _weighted_mean(results: Sequence[AssertionResult]) -> float:
    total_weight = sum(r.weight for r in results)
    if total_weight == 0:
        return sum(r.score for r in results) / len(results)  # all weights 0: count them equally
    return sum(r.score * r.weight for r in results) / total_weight


async def score(output: Output, assertions: Sequence[Assertion], ctx: ScoringContext) -> CaseScore:
    """Run every assertion on one output.

    Judge and embedding calls run concurrently; results keep the assertions' order.

    Args:
        output: What the model produced, with its measurements.
        assertions: The eval's assertions.
        ctx: The case's variables, the renderer, and the judge and embedder.

    Returns:
        Whether all assertions passed, the weighted score, each result and the
        per-metric scores.
    """
    results: list[AssertionResult] = list(
        await asyncio.gather(*(_result(a, output, ctx) for a in assertions))
    )
    return _combine(results)


def merge_scores(scores: Sequence[CaseScore]) -> CaseScore:
    """One verdict over several outputs' scores (a conversation's last answer and its
    turns'): every assertion counts as if scored together."""
    if len(scores) == 1:
        return scores[0]
    return _combine([result for case in scores for result in case.results])


def _combine(results: list[AssertionResult]) -> CaseScore:
    if not results:
        return CaseScore(passed=True, score=1.0, results=[], metrics={})
    by_metric: dict[str, list[AssertionResult]] = {}
    for result in results:
        if result.error is None:
            by_metric.setdefault(result.metric, []).append(result)
    return CaseScore(
        passed=all(r.passed for r in results if r.weight > 0),
        score=_case_score(results),
        results=results,
        metrics={name: _weighted_mean(group) for name, group in by_metric.items()},
    )

