"""Reading --concurrency, --input-tokens and --slo: good lists, and one-line mistakes."""

from __future__ import annotations

import pytest

from promptkit.errors import PromptkitError
from promptkit.profiling.settings import ProfileSettings, describe_slo, parse_counts, parse_slo


def test_slo_reads_milliseconds_and_seconds() -> None:
    slo = parse_slo("ttft=500ms, tpot=50ms,e2el=2s")
    assert slo == {"ttft": 500.0, "tpot": 50.0, "e2el": 2000.0}
    assert parse_slo("e2el=1.5s") == {"e2el": 1500.0}
    assert describe_slo(slo) == "ttft≤500ms, tpot≤50ms, e2el≤2s"


@pytest.mark.parametrize(("text", "says"), [
    ("ttft=500", "not a duration in ms or s"),
    ("ttft=fast", "not a duration"),
    ("itl=5ms", "metric among ttft, tpot, e2el"),
    ("ttft", "not metric=value"),
    ("ttft=1ms,,tpot=2ms", "an empty item"),
    ("ttft=1ms,ttft=2ms", "ttft is given twice"),
    ("ttft=0ms", "more than 0"),
    ("ttft=-5ms", "not a duration"),
])
def test_a_bad_slo_is_one_line(text: str, says: str) -> None:
    with pytest.raises(PromptkitError) as error:
        parse_slo(text)
    assert says in str(error.value)
    assert "\n" not in str(error.value)


def test_counts_keep_their_order_and_refuse_what_is_not_a_level() -> None:
    assert parse_counts("1, 2,8,4", "--concurrency", 1024) == (1, 2, 8, 4)
    for text, says in (("0", "'0' is not a whole number from 1 to 1024"),
                       ("1,x", "'x' is not"), ("2,2", "2 is given twice"),
                       ("", "an empty item"), ("2000", "from 1 to 1024"),
                       ("1.5", "'1.5' is not")):
        with pytest.raises(PromptkitError, match="--concurrency") as error:
            parse_counts(text, "--concurrency", 1024)
        assert says in str(error.value)


def test_requests_per_level_default_to_four_per_slot_and_at_least_eight() -> None:
    settings = ProfileSettings(concurrency=(1, 4, 8))
    assert [settings.requests_at(c) for c in settings.concurrency] == [8, 16, 32]
    assert ProfileSettings(concurrency=(1, 2), requests=3).requests_at(2) == 3
