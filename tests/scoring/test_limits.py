"""Limits: latency, cost, max-tokens, max-words."""

from __future__ import annotations

import pytest

from promptkit.scoring.context import Output

MEASURED = Output(text="今天 weather 很好", latency_s=1.2, output_tokens=30, cost=0.002)


@pytest.mark.parametrize(
    ("kind", "value", "passed"),
    [
        ("latency", 1500, True),  # 1200 ms
        ("latency", 1000, False),
        ("cost", 0.002, True),  # the maximum itself passes
        ("cost", 0.001, False),
        ("max-tokens", 30, True),
        ("max-tokens", 29, False),
        ("max-words", 5, True),  # 今 天 weather 很 好 = 5 words
        ("max-words", 4, False),
    ],
)
async def test_limits(run_one, kind, value, passed):
    result = await run_one(MEASURED, type=kind, value=value)
    assert (result.passed, result.score, result.error) == (passed, float(passed), None)
    assert (await run_one(MEASURED, type=f"not-{kind}", value=value)).passed is not passed


async def test_limit_reason(run_one):
    result = await run_one(MEASURED, type="latency", value=1000)
    assert result.reason == "latency 1200 ms > 1000 ms"


@pytest.mark.parametrize("kind", ["latency", "cost", "max-tokens"])
async def test_missing_measurement_is_an_error(run_one, kind):
    result = await run_one("text only", type=kind, value=1)
    assert not result.passed
    assert result.error.startswith("no ")
