"""Tests for promptkit.builders.answers: extraction settings, extraction, normalization,
majority voting."""

from __future__ import annotations

import re

import pytest

from promptkit.builders.answers import (
    ExtractSettings,
    Vote,
    extract_answer,
    majority_vote,
    normalize_answer,
    strip_reasoning,
)
from promptkit.errors import ConfigError

# --- extraction -------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("2 + 2 = 4.\nAnswer: 4\nLet me know if you need anything else.", "4"),
    ("Answer: 3\nWait, I made a mistake.\nAnswer: 4", "4"),
    ("**Answer:** 42", "42"),
    ("Answer: **Paris**.", "Paris"),
    ("Answer:\n\n42\n", "42"),
    ("So the final answer: B", "B"),
    ("The answer is 17.", "17"),
    ("the answer is: yes", "yes"),
    ("ANSWER: ok", "ok"),
    ("我们先算 3 × 4 = 12，再加 30。\n答案：42。", "42"),
    ("所以答案:四十二", "四十二"),
    ("计算可得，答案是 42。", "42"),
    ("No marker here, just 42.", None),
    ("Answer: 5\nAnswer:", "5"),  # an empty last marker falls back to the previous one
    ("", None),
])
def test_marker_extraction(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_custom_marker_is_case_insensitive_and_last_wins() -> None:
    spec = ExtractSettings(marker="####")
    assert extract_answer("#### 1\nthen #### 2 \n", spec) == "2"
    assert extract_answer("Answer: 3", spec) is None
    assert extract_answer("RESULT = 9", ExtractSettings(marker="result =")) == "9"


def test_think_block_decoy_is_ignored() -> None:
    text = "<think>Maybe the Answer: 5? No, 3 + 3 = 6.</think>\nAnswer: 6"
    assert extract_answer(text) == "6"
    assert extract_answer(text, ExtractSettings(method="last-number")) == "6"
    assert strip_reasoning(text) == "Answer: 6"


def test_unclosed_think_has_no_answer() -> None:
    text = "<think>Answer: 5 seems likely, but let me check 7"
    assert strip_reasoning(text) == ""
    assert extract_answer(text) is None
    assert extract_answer(text, ExtractSettings(method="last-number")) is None


def test_stray_closing_think_drops_what_precedes_it() -> None:
    assert strip_reasoning("</think>\n\nAnswer: 4") == "Answer: 4"
    # Chat templates that open <think> in the prompt leave only the closing tag.
    assert extract_answer("Answer: 1 maybe...</think>Answer: 2") == "2"
    assert strip_reasoning("<THINKING>x</THINKING> a <think>y</think> b") == "a  b"


def test_full_extraction_returns_the_visible_text() -> None:
    spec = ExtractSettings(method="full")
    assert extract_answer("<think>hmm</think>\n  Paris  \n", spec) == "Paris"
    assert extract_answer("<think>hmm</think>", spec) is None
    assert extract_answer(None, spec) is None


def test_regex_with_a_group_uses_group_one_and_last_match() -> None:
    spec = ExtractSettings(method="regex", pattern=r"choice \(([A-D])\)")
    assert extract_answer("choice (A) is wrong; choice (C) is right. Bye", spec) == "C"
    assert extract_answer("no choice", spec) is None


def test_regex_without_groups_uses_the_whole_match() -> None:
    spec = ExtractSettings(method="regex", pattern=r"\b[A-D]\b")
    assert extract_answer("Between A and D, I pick D.\nThanks", spec) == "D"
    assert extract_answer("<think>B</think>The option is C", spec) == "C"


def test_regex_inline_flags() -> None:
    spec = ExtractSettings(method="regex", pattern=r"(?im)^result:\s*(.+)$")
    assert extract_answer("RESULT: one\nresult: two\nbye", spec) == "two"


def test_json_field_inside_a_fence_with_prose() -> None:
    text = ('Sure! Here is my reasoning {not json}.\n```json\n'
            '{"reasoning": "3 + 3 = 6", "answer": 6}\n```\nHope that helps {"answer"')
    assert extract_answer(text, ExtractSettings(method="json", field="answer")) == "6"


def test_json_dotted_path_and_list_index() -> None:
    text = 'Result: {"result": {"answer": "Paris", "scores": [0.5, 0.25]}, "ok": true} done'
    assert extract_answer(text, ExtractSettings(method="json", field="result.answer")) == "Paris"
    assert extract_answer(text, ExtractSettings(method="json", field="result.scores.1")) == "0.25"
    assert extract_answer(text, ExtractSettings(method="json", field="ok")) == "true"
    assert extract_answer(text, ExtractSettings(method="json", field="result.missing")) is None
    assert extract_answer(text, ExtractSettings(method="json", field="result.scores.9")) is None


def test_json_last_object_with_the_field_wins_and_nested_objects_do_not_count() -> None:
    text = ('{"answer": "first"} then {"data": {"answer": "nested"}} '
            'then {"answer": "last"} then {"other": 1} {"answer": null}')
    assert extract_answer(text, ExtractSettings(method="json", field="answer")) == "last"
    assert extract_answer("no json at all", ExtractSettings(method="json", field="a")) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("Tom has 3 apples, buys 5 more, and now has 8.", "8"),
    ("The total is 1,234 dollars.", "1234"),
    ("Population: 12,345,678 people", "12345678"),
    ("It costs $3.50 each.", "3.5"),
    ("12.0 kg", "12"),
    ("0.500", "0.5"),
    ("The temperature fell to -3 degrees.", "-3"),
    ("From 2-3 hours", "3"),
    ("-0.0", "0"),
    ("共有１２３个苹果", "123"),
    ("答案是 ４２。", "42"),
    ("答案是42。", "42"),
    ("得数为３．５", "3.5"),
    ("So 42 apples", "42"),
    ("About 50% of them, i.e. 25 %", "25%"),
    ("50% of the class", "50%"),
    ("Answer: 7.\n", "7"),
    ("H2O has no number outside words", None),
    ("no numbers here", None),
    ("有3，然后有5", "5"),
])
def test_last_number(text: str, expected: str | None) -> None:
    assert extract_answer(text, ExtractSettings(method="last-number")) == expected


# --- spec validation --------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "key", "message"), [
    ({"method": "vibes"}, "method", "Input should be 'marker', 'regex'"),
    ({"method": "regex"}, "pattern", "method: regex needs a 'pattern'"),
    ({"method": "regex", "pattern": "([A-D]"}, "pattern", "invalid regex '([A-D]'"),
    ({"method": "json"}, "field", "method: json needs a 'field'"),
    ({"method": "marker", "pattern": "x"}, "pattern", "only used with method: regex"),
    ({"method": "regex", "pattern": "x", "field": "a"}, "field", "only used with method: json"),
    ({"method": "last-number", "marker": "A:"}, "marker", "only used with method: marker"),
    ({"marker": ""}, "marker", "must not be empty"),
    ({"method": "json", "field": "a..b"}, "field", "invalid dotted path"),
    ({"colour": "red"}, "colour", "unknown key 'colour'"),
])
def test_invalid_settings_name_their_key(kwargs: dict, key: str, message: str) -> None:
    # Built from Python, the error is promptkit's, under the key a spec would use.
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        ExtractSettings(**kwargs)
    assert info.value.key_path == f"cot.extract.{key}"
    assert str(info.value) == f"cot.extract.{key}: {info.value.message}"
    # From a mapping, the error is a ConfigError under "extract".
    with pytest.raises(ConfigError) as error:
        extract_answer("Answer: 4", kwargs)
    assert error.value.key_path == f"extract.{key}"
    assert error.value.message == info.value.message


def test_invalid_regex_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"invalid regex '\(\[A-D\]'") as info:
        ExtractSettings(method="regex", pattern="([A-D]")
    assert info.value.key_path == "cot.extract.pattern"
    with pytest.raises(ConfigError, match=r"^cot\.extract\.method: Input should be 'marker'"):
        ExtractSettings(method="vibes")


def test_extract_answer_takes_settings_or_a_mapping() -> None:
    text = 'Result: {"result": {"answer": "Paris"}}'
    settings = ExtractSettings(method="json", field="result.answer")
    assert extract_answer(text, settings) == "Paris"
    assert extract_answer(text, {"method": "json", "field": "result.answer"}) == "Paris"
    assert extract_answer("Answer: 4", {}) == extract_answer("Answer: 4") == "4"
    with pytest.raises(ConfigError, match="expected a mapping or ExtractSettings"):
        extract_answer("Answer: 4", 42)  # type: ignore[arg-type]


# --- normalization ----------------------------------------------------------------------

@pytest.mark.parametrize(("answer", "expected"), [
    ("  Paris  ", "paris"),
    ('"Paris".', "paris"),
    ("“巴黎”。", "巴黎"),
    ("「巴黎」！", "巴黎"),
    ("**B**", "b"),
    ("*b*", "b"),
    ("`b`", "b"),
    ("(C)", "c"),
    ("[yes]", "yes"),
    ("【答案】", "答案"),
    ("（Ａ）", "a"),
    ("Yes!", "yes"),
    ("ok？", "ok"),
    ("好的．", "好的"),
    ("New   York\nCity", "new york city"),
    ("1,234", "1234"),
    ("3.50", "3.5"),
    ("12.0", "12"),
    ("-0", "0"),
    ("+5", "5"),
    ("$1,000.00", "1000"),
    ("１２３", "123"),
    ("50 %", "50%"),
    ("\\boxed{42}", "42"),
    ("$42$", "42"),
    ("42 apples", "42 apples"),
    ("(a) and (b)", "(a) and (b)"),
    ('"a" or "b"', '"a" or "b"'),
    ("snake_case_", "snake_case_"),
    ("1,23", "1,23"),
    ("...", ""),
    ("", ""),
    (None, ""),
])
def test_normalize_answer(answer: str | None, expected: str) -> None:
    assert normalize_answer(answer) == expected


# --- majority vote ----------------------------------------------------------------------

def test_majority_vote_clear_winner() -> None:
    vote = majority_vote(["42", "41", "42.0", "1,000", "42"])
    assert vote == Vote(answer="42", count=3, agreement=0.6,
                        votes={"42": 3, "41": 1, "1000": 1})


def test_majority_vote_tie_goes_to_first_seen() -> None:
    assert majority_vote(["a", "b", "b", "a"]).answer == "a"
    assert majority_vote(["b", "a", "a", "b"]).answer == "b"
    vote = majority_vote(["Paris", "London"])
    assert (vote.answer, vote.count, vote.agreement) == ("paris", 1, 0.5)
    assert list(vote.votes) == ["paris", "london"]
    assert majority_vote(["London", "Paris"]).answer == "london"


def test_majority_vote_ignores_none() -> None:
    vote = majority_vote([None, "7", None, "8", "7", ""])
    assert vote == Vote(answer="7", count=2, agreement=2 / 3, votes={"7": 2, "8": 1})


def test_majority_vote_all_none() -> None:
    assert majority_vote([None, None]) == Vote(answer=None, count=0, agreement=0.0, votes={})
    assert majority_vote([]) == Vote(answer=None, count=0, agreement=0.0, votes={})


def test_majority_vote_agreement_ratio_is_exact() -> None:
    vote = majority_vote(["x"] * 3 + ["y"] * 4)
    assert (vote.answer, vote.count, vote.agreement) == ("y", 4, 4 / 7)
    assert majority_vote(["Yes", "yes.", "**YES**"]).agreement == 1.0


def test_a_catastrophic_extraction_regex_finds_nothing_instead_of_stalling(monkeypatch):
    import promptkit.builders.answers as answers

    monkeypatch.setattr(answers, "REGEX_TIMEOUT_S", 0.05)
    spec = ExtractSettings(method="regex", pattern="(a|aa)+$")
    assert extract_answer("a" * 40 + "b", spec) is None  # Fibonacci(40) tries
    fine = ExtractSettings(method="regex", pattern=r"Answer: (\w+)")
    assert extract_answer("Answer: aaaa", fine) == "aaaa"


def test_json_extraction_survives_deep_nesting_and_huge_outputs():
    spec = ExtractSettings(method="json", field="answer")
    assert extract_answer("{" * 100_000 + ' {"answer": 7}', spec) == "7"
    assert extract_answer("[" * 50_000 + "]" * 50_000, spec) is None
