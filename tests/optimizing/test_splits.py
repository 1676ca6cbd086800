"""The train/validation/test split: seeded, stratified, order-free, never an empty part."""

from __future__ import annotations

from collections import Counter

import pytest

from promptkit.errors import ConfigError
from promptkit.optimizing.splits import parse_fractions, split_cases


def cases(n: int, strata: int = 0) -> list[tuple[str, str | None]]:
    return [(f"c{i:03d}", f"s{i % strata}" if strata else None) for i in range(n)]


def test_every_case_lands_in_exactly_one_part_in_the_asked_proportions() -> None:
    split = split_cases(cases(100), (0.5, 0.25, 0.25), seed=1)
    parts = [split.train, split.validation, split.test]
    assert [len(p) for p in parts] == [50, 25, 25]
    everything = [case for part in parts for case in part]
    assert sorted(everything) == sorted(c for c, _ in cases(100))


def test_the_split_depends_on_the_seed_not_on_the_order_cases_are_read_in() -> None:
    forward = split_cases(cases(40), (0.5, 0.25, 0.25), seed=7)
    backward = split_cases(list(reversed(cases(40))), (0.5, 0.25, 0.25), seed=7)
    other = split_cases(cases(40), (0.5, 0.25, 0.25), seed=8)
    assert forward == backward
    assert set(forward.test) != set(other.test)


def test_each_stratum_is_spread_over_the_parts_in_proportion() -> None:
    split = split_cases(cases(120, strata=6), (0.5, 0.25, 0.25), seed=0, stratum="category")
    strata = {case: stratum for case, stratum in cases(120, strata=6)}
    for part, share in ((split.train, 10), (split.validation, 5), (split.test, 5)):
        assert Counter(strata[case] for case in part) == {f"s{i}": share for i in range(6)}


@pytest.mark.parametrize(("text", "message"), [
    ("0.5/0.5", "three fractions"), ("0.5/0.3/0.3", "sum to 1.1"), ("a/b/c", "three"),
    ("1/0/0", "between 0 and 1")])
def test_bad_fractions_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_fractions(text)


def test_a_split_with_an_empty_part_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="leaves the test split empty with 3 cases"):
        split_cases(cases(3), (0.6, 0.3, 0.1), seed=0)


def test_small_strata_still_give_every_part_its_share() -> None:
    split = split_cases(cases(12, strata=6), (0.5, 0.25, 0.25), seed=0, stratum="category")
    assert split.sizes() == {"train": 6, "validation": 3, "test": 3}
    strata = {case: stratum for case, stratum in cases(12, strata=6)}
    assert len({strata[case] for case in split.train}) == 6  # one of each in train
