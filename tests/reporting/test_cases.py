"""Tests for promptkit.reporting.cases: the case table's rows, made as results stream by."""

from __future__ import annotations

import json

from helpers import handcrafted, result
from promptkit.reporting.cases import PREVIEW_CHARS, CaseRows, case_row, check_view


def test_a_row_per_result_with_its_outcome_output_and_checks() -> None:
    failed, errored, cached = handcrafted()[2], handcrafted()[3], handcrafted()[4]
    row = case_row(failed, flipped=True)
    assert (row.prompt_id, row.provider_id, row.case_id, row.repeat) == ("p1", "a", "c1", 0)
    assert (row.status, row.flipped, row.score, row.latency) == ("fail", True, "0.500", "2.00s")
    assert (row.output, row.preview, row.prompt) == ("answer 1", None, "")
    assert [(c.type, c.status, c.reason) for c in row.checks] == [
        ("rouge-l", "fail", "0.40 < 0.5"), ("llm-judge", "pass", "fine")]
    assert row.checks_passed == "1/2 passed"
    error = case_row(errored)
    assert (error.status, error.output, error.latency) == (
        "error", "timeout: timed out after 60s", "5.00s")
    assert case_row(cached).latency == "cached"


def test_long_or_multiline_outputs_get_a_one_line_preview() -> None:
    long = case_row(result("p", "m", 0, output="word " * 100, vars={"日期": "今天"}))
    assert long.preview == ("word " * 100)[:PREVIEW_CHARS]
    assert case_row(result("p", "m", 0, output="a\nb")).preview == "a b"
    assert json.loads(long.variables) == {"日期": "今天"} and "日期" in long.variables


def test_an_assertion_that_errored_shows_its_error() -> None:
    check = check_view({"type": "python", "passed": False, "reason": "", "error": "boom"})
    assert (check.status, check.reason) == ("error", "boom")
    assert check_view({}).type == "assertion"


def test_rows_stop_at_the_limit_and_count_the_rest() -> None:
    rows = CaseRows(iter(handcrafted()), {("p1", "a", "c1")}, limit=3)
    shown = list(rows)
    assert [row.case_id for row in shown] == ["c0", "c0", "c1"]
    assert [row.flipped for row in shown] == [False, False, True]
    assert (rows.shown, rows.left_out) == (3, 6)
    everything = CaseRows(handcrafted())
    assert len(list(everything)) == 9 and everything.left_out == 0
