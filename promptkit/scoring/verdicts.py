"""Verdicts: what an assertion handler returns, and the helpers that build them.

A handler answers with a :class:`GradingResult`, or raises :class:`EvaluationError` when
the assertion cannot be evaluated on this output (the message becomes the result's
``error``, which fails the assertion). The helpers here give the built-in handlers their
shared wording: ``output contains 'x': no``, ``rouge-l 0.420 < 0.5``,
``latency 1200 ms > 1000 ms``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..terminal import cut

__all__ = [
    "EvaluationError",
    "GradingResult",
    "answered",
    "binary",
    "limit",
    "quoted",
    "thresholded",
    "unit_score",
    "verdict_from_mapping",
]


@dataclass
class GradingResult:
    """A verdict: what assertion handlers and ``python`` assertion functions return
    (functions may also return a dict with ``pass``, ``score`` and ``reason``).

    Attributes:
        passed: Whether the assertion holds.
        score: In ``[0, 1]``; ``None`` means 1.0 when passed, else 0.0.
        reason: A short explanation shown in reports.
    """

    passed: bool
    score: float | None = None
    reason: str = ""


class EvaluationError(Exception):
    """An assertion could not be evaluated (its message becomes ``AssertionResult.error``).

    Handlers raise it for a clean message; any other exception a handler raises is
    recorded as ``"TypeName: message"``.
    """


def quoted(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, as a Python literal: ``'Paris'``, ``'a lo…'``."""
    return repr(cut(text, limit))


def binary(passed: bool, reason: str) -> GradingResult:
    """A pass/fail verdict: score 1.0 or 0.0."""
    return GradingResult(passed, 1.0 if passed else 0.0, reason)


def answered(passed: bool, question: str) -> GradingResult:
    """A pass/fail verdict whose reason answers ``question`` with yes or no."""
    # "output contains 'x': no" reads right whether or not the assertion is negated.
    return binary(passed, f"{question}: {'yes' if passed else 'no'}")


def thresholded(name: str, value: float, threshold: float) -> GradingResult:
    """A scored verdict: passes when ``value >= threshold``."""
    verb = ">=" if value >= threshold else "<"
    return GradingResult(value >= threshold, value, f"{name} {value:.3f} {verb} {threshold}")


def limit(name: str, measured: float | None, maximum: float, unit: str) -> GradingResult:
    """A pass/fail verdict on a measurement: passes when ``measured <= maximum``.

    Raises:
        EvaluationError: nothing was measured.
    """
    if measured is None:
        raise EvaluationError(f"no {name} was measured for this output")
    verb = "<=" if measured <= maximum else ">"
    return binary(measured <= maximum, f"{name} {measured:g}{unit} {verb} {maximum:g}{unit}")


def unit_score(value: Any, passed: bool, source: str) -> float:
    """``value`` as a score in ``[0, 1]``; None gives 1.0 when passed, else 0.0.

    Raises:
        EvaluationError: ``value`` is not a number in ``[0, 1]`` (``source`` names who
            gave it).
    """
    if value is None:
        return 1.0 if passed else 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise EvaluationError(f"{source} gave score {value!r}, not a number in [0, 1]")
    return float(value)


def verdict_from_mapping(verdict: Mapping[str, Any], source: str) -> GradingResult:
    """Read ``{"pass": bool, "score": float, "reason": str}``; score and reason optional.

    Raises:
        EvaluationError: no boolean ``pass``, or a score outside ``[0, 1]``.
    """
    passed = verdict.get("pass")
    if not isinstance(passed, bool):
        raise EvaluationError(f"{source} gave no boolean 'pass': {quoted(str(verdict))}")
    value = unit_score(verdict.get("score"), passed, source)
    return GradingResult(passed, value, str(verdict.get("reason", "")))
