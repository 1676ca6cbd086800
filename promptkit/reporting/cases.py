"""The rows of a report's case table, one per result, made as the results stream by.

:class:`CaseRows` reads the results once and yields a :class:`CaseRow` for each of the
first ``limit``, counting the rest, so a 100,000-case run is never held in memory. A row
carries what a reader checks a case with: its outcome, its output (with a short preview
when it is long), each assertion's verdict and reason, the case's variables and the
prompt it was sent (empty until results record it).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ..results import CaseResult
from .views import seconds

PREVIEW_CHARS = 160  # an output longer than this, or of several lines, is folded

Status = Literal["pass", "fail", "error"]


@dataclass
class CheckView:
    """One assertion's outcome on a case: its type, whether it passed, and why."""

    type: str
    passed: bool
    reason: str  # the assertion's reason, or the error that stopped it; "" when none
    error: bool = False

    @property
    def status(self) -> Status:
        return "error" if self.error else ("pass" if self.passed else "fail")


@dataclass
class CaseRow:
    """One result as the case table shows it.

    ``output`` is the answer, or ``kind: message`` for an error; ``preview`` is set when it
    is too long or has several lines to show in full (it is then folded). ``prompt`` is
    the rendered prompt, shown when not empty.
    """

    prompt_id: str
    provider_id: str
    case_id: str
    repeat: int
    status: Status
    flipped: bool
    score: str
    latency: str
    output: str
    preview: str | None
    variables: str  # the case's variables as indented JSON
    checks: list[CheckView] = field(default_factory=list)
    prompt: str = ""

    @property
    def checks_passed(self) -> str:
        """``2/3 passed``."""
        return f"{sum(check.passed for check in self.checks)}/{len(self.checks)} passed"


def preview(text: str) -> str | None:
    """The first words of a long or multi-line text, on one line; ``None`` for a text short
    enough to show as it is."""
    if len(text) <= PREVIEW_CHARS and "\n" not in text:
        return None
    return " ".join(text.split())[:PREVIEW_CHARS]


def check_view(assertion: dict[str, Any]) -> CheckView:
    """An assertion record of a result (``type``, ``passed``, ``reason``, ``error``)."""
    error = assertion.get("error")
    return CheckView(str(assertion.get("type", "assertion")), bool(assertion.get("passed")),
                     str(error or assertion.get("reason") or ""), error is not None)


def case_row(result: CaseResult, flipped: bool = False) -> CaseRow:
    """One result as the case table shows it."""
    status: Status = "error" if result.error is not None else (
        "pass" if result.passed else "fail")
    output = (result.output if result.error is None
              else f"{result.error_kind or 'error'}: {result.error}") or ""
    return CaseRow(
        result.prompt_id, result.provider_id, result.case_id, result.repeat, status, flipped,
        score=f"{result.score:.3f}",
        latency="cached" if result.cached else seconds(result.latency_s),
        output=output, preview=preview(output),
        variables=json.dumps(result.vars, ensure_ascii=False, indent=1, default=str),
        checks=[check_view(a) for a in result.assertions])


class CaseRows:
    """The case rows of ``results``, read once when iterated: the first ``limit`` become
    rows; ``shown`` and ``left_out`` count them as they go (final once iteration ends).

    Args:
        results: The results, in store order.
        flipped: ``(prompt_id, provider_id, case_id)`` of the cases a comparison flipped.
        limit: The most rows to make.
    """

    def __init__(self, results: Iterable[CaseResult],
                 flipped: Collection[tuple[str, str, str]] = (), limit: int | None = None):
        self.results = results
        self.flipped = flipped
        self.limit = limit
        self.shown = 0
        self.left_out = 0

    def __iter__(self) -> Iterator[CaseRow]:
        for result in self.results:
            if self.limit is not None and self.shown >= self.limit:
                self.left_out += 1
                continue
            self.shown += 1
            key = (result.prompt_id, result.provider_id, result.case_id)
            yield case_row(result, key in self.flipped)
