"""Comparisons the presenter tests share: a one-row factory and a hostile two-row one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from promptkit.comparing.baseline import Side, SideCase, SideRow
from promptkit.comparing.comparison import Comparison, compare

Outcome = bool | list[bool | None]


def case(case_id: str, passed: Outcome, output: str = "") -> SideCase:
    passes = passed if isinstance(passed, list) else [passed]
    answered = [p for p in passes if p is not None]
    score = sum(answered) / len(answered) if answered else 0.0
    return SideCase(case_id, passes, score, {}, output or case_id)


def side_row(prompt: str, outcomes: list[Outcome], provider: str = "p", model: str = "m"
             ) -> SideRow:
    cases = {f"c{i:02d}": case(f"c{i:02d}", ok, f"{prompt} answer {i}")
             for i, ok in enumerate(outcomes)}
    return SideRow(prompt, provider, model, "t@1", ["aaa"], {}, cases)


CompareOne = Callable[..., Comparison]


@pytest.fixture
def compare_one() -> CompareOne:
    """``compare_one(before, after, **compare_kwargs)``: one row ``a × p`` compared, its
    cases' outcomes given as lists (a list per case for repeats)."""

    def make(before: list[Outcome], after: list[Outcome], *, before_model: str = "m",
             after_model: str = "m", **kwargs) -> Comparison:
        return compare(Side("base", [side_row("a", before, model=before_model)]),
                       Side("new", [side_row("a", after, model=after_model)]), **kwargs)

    return make


HOSTILE_ID = "c|ase\nid <b>x</b> [link](http://x) *em* `code` \x1b[2J $1$"


@pytest.fixture
def hostile_id() -> str:
    """The id of ``two_rows``' last regressed case: Markdown, HTML, a pipe, a newline and
    a terminal control sequence."""
    return HOSTILE_ID


@pytest.fixture
def two_rows() -> Comparison:
    """Two rows: ``a`` regressed on 8 of 10 cases (one id full of Markdown, HTML and
    terminal control), ``b`` unchanged but on another model; a third row only before."""
    before = [side_row("a", [True] * 10), side_row("b", [True] * 4),
              side_row("gone", [True])]
    after = [side_row("a", [False] * 8 + [True] * 2), side_row("b", [True] * 4, model="m2")]
    hostile = before[0].cases.pop("c00")
    before[0].cases[HOSTILE_ID] = SideCase(HOSTILE_ID, hostile.passes, hostile.score, {},
                                              "line one | two\nline <three>")
    regressed = after[0].cases.pop("c00")
    after[0].cases[HOSTILE_ID] = SideCase(HOSTILE_ID, regressed.passes, regressed.score,
                                             {}, "now | worse\n**bold**")
    return compare(Side("base", before), Side("new", after))
