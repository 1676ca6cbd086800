"""Verdicts and their shared wording."""

from __future__ import annotations

import pytest

from promptkit.scoring.verdicts import (
    EvaluationError,
    GradingResult,
    answered,
    limit,
    quoted,
    thresholded,
    verdict_from_mapping,
)


def test_quoted_cuts_then_quotes() -> None:
    assert quoted("Paris") == "'Paris'"
    assert quoted("x" * 60) == repr("x" * 60)
    assert quoted("x" * 61) == repr("x" * 59 + "…")
    assert quoted("it's\nhere", 4) == repr("it'…")
    assert quoted("a\x1bb") == "'a\\x1bb'"  # repr shows control characters


def test_the_wording_of_verdicts() -> None:
    assert answered(False, "output contains 'x'") == GradingResult(
        False, 0.0, "output contains 'x': no")
    assert thresholded("rouge-l", 0.42, 0.5).reason == "rouge-l 0.420 < 0.5"
    assert limit("latency", 1200, 1000, " ms").reason == "latency 1200 ms > 1000 ms"
    with pytest.raises(EvaluationError, match="no latency was measured"):
        limit("latency", None, 1000, " ms")


def test_a_verdict_without_a_boolean_pass_is_quoted_short() -> None:
    with pytest.raises(EvaluationError) as caught:
        verdict_from_mapping({"pass": "yes", "reason": "r" * 100}, "the judge")
    shown = "{'pass': 'yes', 'reason': '" + "r" * 32 + "…"
    assert str(caught.value) == f"the judge gave no boolean 'pass': {shown!r}"
    assert verdict_from_mapping({"pass": True}, "f") == GradingResult(True, 1.0, "")
