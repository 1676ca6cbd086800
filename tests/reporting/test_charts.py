"""Tests for promptkit.reporting.charts: where the points, bars and ticks go."""

from __future__ import annotations

import pytest

from helpers import handcrafted
from promptkit.reporting.charts import LABEL_CHARS, charts, short, ticks
from promptkit.reporting.summary import summarize


@pytest.mark.parametrize(("high", "expected"), [
    (0, [0.0, 1.0]), (1.1, [0, 0.25, 0.5, 0.75, 1.0, 1.25]), (3.3, [0, 1, 2, 3, 4]),
    (0.0044, [0, 0.001, 0.002, 0.003, 0.004, 0.005])])
def test_ticks_are_round_and_few(high: float, expected: list[float]) -> None:
    assert ticks(high) == pytest.approx(expected)


def test_a_point_and_a_bar_per_row_and_a_note_without_prices() -> None:
    rows = summarize(handcrafted()).rows
    drawn = charts(rows)
    assert len(drawn.latency.points) == len(rows) and len(drawn.bars.bars) == len(rows)
    assert drawn.latency.empty is None and drawn.latency.x_ticks[0].label == "0s"
    assert [p.colour for p in drawn.latency.points][:2] == ["#2563eb", "#2563eb"]  # prompt p1
    # two of the four rows have a price: the cost chart says the others are left out
    assert len(drawn.cost.points) == 2 and "2 row(s) without cost data" in drawn.cost.caption
    bar = drawn.bars.bars[1]  # p1 × a: 50% with its interval
    assert bar.value == "50.0%" and bar.low < bar.width + drawn.bars.x < bar.high
    unpriced = charts([row for row in rows if row.cost is None])
    assert unpriced.cost.empty == "no cost data (no price configured)"


def test_long_labels_are_cut() -> None:
    assert short("x" * LABEL_CHARS) == "x" * LABEL_CHARS
    assert short("x" * 40) == "x" * (LABEL_CHARS - 1) + "…"
