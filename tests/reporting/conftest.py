"""What the presenter tests share: comparisons (a one-row factory and a hostile two-row
one) and results of tool calls and conversations, as the runner records them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from helpers import result
from promptkit.comparing.baseline import Side, SideCase, SideRow
from promptkit.comparing.comparison import Comparison, compare
from promptkit.results import CaseResult
from promptkit.running.turns import assistant_message, tool_message

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


# -- tool calls and conversations ------------------------------------------------------

WEATHER = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
# Arguments that are not JSON, and would mark the page if they ever ran.
UNPARSED = ('{"tz": "</pre><script>document.documentElement.setAttribute(\'data-xss\', '
            '\'args\')</script>')


@pytest.fixture
def tool_answer() -> CaseResult:
    """An answer that is two tool calls and no text, the second with arguments that are
    not JSON (and hold markup)."""
    return result("tools", "m", 0, output="", passed=True, score=1.0,
                  finish_reason="tool_calls",
                  tool_calls=[WEATHER, {"id": "call_2", "name": "get_time", "arguments": None,
                                        "raw_arguments": UNPARSED}])


@pytest.fixture
def conversation() -> CaseResult:
    """A three-turn case: a tool call answered from ``tool_results``, then two later user
    turns; the assertion of turn 2 failed. Four requests."""
    return CaseResult(
        "agent", "m", "c1", 1, output="You're welcome.", finish_reason="stop", requests=4,
        tool_calls=[WEATHER], prompt=[{"role": "user", "content": "Weather in Paris?"}],
        conversation=[assistant_message("", [WEATHER]),
                      tool_message("call_1", {"sky": "<b>sunny</b>"}),
                      assistant_message("Sunny in Paris.", []),
                      {"role": "user", "content": "And tomorrow?"},
                      assistant_message("Rain.", []),
                      {"role": "user", "content": "Thanks"},
                      assistant_message("You're welcome.", [])],
        assertions=[
            {"type": "contains", "metric": "contains", "passed": True, "score": 1.0,
             "weight": 1.0, "reason": "found 'welcome'", "error": None},
            {"type": "equals", "metric": "equals", "passed": False, "score": 0.0,
             "weight": 1.0, "reason": "expected 'Snow.', got 'Rain.'", "error": None,
             "turn": 2}])


MAX_TURNS_REASON = ("max_turns (2) reached before a final answer: the model was still "
                    "calling tools")


@pytest.fixture
def cut_short() -> CaseResult:
    """A conversation ``max_turns`` stopped: the model kept calling the tool."""
    again = {**WEATHER, "id": "call_2"}
    return result(
        "agent", "m", 2, output="", finish_reason="tool_calls", requests=2,
        tool_calls=[WEATHER, again],
        conversation=[assistant_message("", [WEATHER]), tool_message("call_1", "sunny"),
                      assistant_message("", [again]), tool_message("call_2", "sunny")],
        assertions=[{"type": "max-turns", "metric": "max-turns", "passed": False,
                     "score": 0.0, "weight": 1.0, "error": None,
                     "reason": MAX_TURNS_REASON}])
