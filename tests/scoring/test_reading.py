"""Reading model text: reasoning stripped, patterns cached, JSON bounded; one implementation
shared with chain-of-thought answer extraction (promptkit.builders.answers)."""

from __future__ import annotations

import pytest
import regex

from promptkit.builders import answers
from promptkit.scoring.reading import compile_pattern, parse_json, search, strip_reasoning
from promptkit.scoring.verdicts import EvaluationError


def test_chain_of_thought_uses_the_same_helpers():
    assert answers.strip_reasoning is strip_reasoning
    assert answers._compile is compile_pattern


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("<think>maybe 5</think>\nAnswer: 6", "Answer: 6"),
        ("<THINKING>x</THINKING> a <think>y</think> b", "a  b"),
        ("guess</think>\n\nAnswer: 4", "Answer: 4"),  # the opener was in the prompt
        ("Answer: 1 <think>ran out of tokens", "Answer: 1"),
        ("no reasoning at all ", "no reasoning at all"),
    ],
)
def test_strip_reasoning(text, stripped):
    assert strip_reasoning(text) == stripped


def test_patterns_are_compiled_once_with_the_regex_package():
    assert compile_pattern(r"\d+") is compile_pattern(r"\d+")
    with pytest.raises(regex.error):
        compile_pattern("(unclosed")


def test_search_stops_a_catastrophic_pattern(monkeypatch):
    import promptkit.scoring.reading as reading

    monkeypatch.setattr(reading, "REGEX_TIMEOUT_S", 0.05)
    assert search(compile_pattern("b$"), "a" * 40 + "b") is not None
    with pytest.raises(EvaluationError, match=r"regex /\(a\|aa\)\+\$/ took longer than 0.05s"):
        search(compile_pattern("(a|aa)+$"), "a" * 40 + "b")


def test_parse_json_is_bounded():
    assert parse_json(' {"a": [1]} ') == {"a": [1]}
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="more than the 1,000,000 parsed as JSON"):
        parse_json('"' + "x" * 1_000_001 + '"')
    with pytest.raises(ValueError):
        parse_json("{'a': 1}")
