"""Tests for promptkit.cot: triggers, answer extraction, normalization and voting."""

from __future__ import annotations

import copy

import pytest

from promptkit.builders.cot import (
    ANSWER_INSTRUCTIONS,
    TRIGGERS,
    ChainOfThought,
    Extractor,
    ExtractSpec,
    Vote,
    chain_of_thought,
    extract_answer,
    majority_vote,
    normalize_answer,
    strip_reasoning,
)
from promptkit.errors import ConfigError

EN_SUFFIX = "Let's think step by step.\nEnd with a line \"Answer: <answer>\"."
ZH_SUFFIX = "让我们一步一步地思考。\n最后一行写“答案：<答案>”。"

CHAT = [
    {"role": "system", "content": "You are good at maths."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3 + 3?"},
]


# --- constants and the builder ----------------------------------------------------------

def test_constants_hold_the_documented_texts() -> None:
    assert TRIGGERS["en"] == "Let's think step by step."
    assert TRIGGERS["zh"] == "让我们一步一步地思考。"
    assert TRIGGERS["en-plan"].startswith("Let's first understand the problem and devise")
    assert ANSWER_INSTRUCTIONS == {
        "en": 'End with a line "Answer: <answer>".',
        "zh": "最后一行写“答案：<答案>”。",
    }


def test_zero_shot_defaults() -> None:
    cot = chain_of_thought()
    assert isinstance(cot, ChainOfThought)
    assert cot.style == "zero-shot"
    assert (cot.samples, cot.temperature) == (1, None)
    assert cot.suffix == EN_SUFFIX


def test_self_consistency_keeps_samples_and_temperature() -> None:
    cot = chain_of_thought("self-consistency", samples=7, temperature=0.9)
    assert (cot.samples, cot.temperature) == (7, 0.9)
    assert cot.trigger == TRIGGERS["en"]
    # Other styles ignore the sampling settings.
    assert chain_of_thought("few-shot", samples=7).samples == 1


# --- apply ------------------------------------------------------------------------------

def test_english_trigger_on_text_prompt() -> None:
    assert chain_of_thought().apply("What is 2 + 2?") == f"What is 2 + 2?\n{EN_SUFFIX}"
    # A prompt that already ends with a newline gets no blank line; calling == apply.
    assert chain_of_thought()("Q:\n") == f"Q:\n{EN_SUFFIX}"


def test_chinese_trigger_on_text_prompt() -> None:
    assert chain_of_thought(lang="zh").apply("2加2等于几？") == f"2加2等于几？\n{ZH_SUFFIX}"
    # A regional tag falls back to its base language.
    assert chain_of_thought(lang="zh-CN").suffix == ZH_SUFFIX


def test_plan_and_solve_trigger_uses_the_base_language_instruction() -> None:
    cot = chain_of_thought(lang="en-plan")
    assert cot.suffix == TRIGGERS["en-plan"] + "\n" + ANSWER_INSTRUCTIONS["en"]


def test_trigger_goes_to_the_last_user_message_without_mutation() -> None:
    original = copy.deepcopy(CHAT)
    result = chain_of_thought().apply(CHAT)
    assert original == CHAT
    assert len(result) == len(CHAT)
    assert [m["role"] for m in result] == ["system", "user", "assistant", "user"]
    assert result[3]["content"] == f"And 3 + 3?\n{EN_SUFFIX}"
    assert result[:3] == CHAT[:3]
    assert result[3] is not CHAT[3]


def test_chinese_trigger_on_chat_prompt() -> None:
    chat = [{"role": "user", "content": "2加2等于几？"}, {"role": "assistant", "content": "4"}]
    result = chain_of_thought(lang="zh").apply(chat)
    assert result == [{"role": "user", "content": f"2加2等于几？\n{ZH_SUFFIX}"},
                      {"role": "assistant", "content": "4"}]
    assert chat[0]["content"] == "2加2等于几？"


def test_chat_content_parts_get_a_text_part() -> None:
    parts = [{"type": "text", "text": "Count the cats."},
             {"type": "image_url", "image_url": {"url": "data:,"}}]
    chat = [{"role": "user", "content": parts}]
    result = chain_of_thought().apply(chat)
    assert result[0]["content"] == [*parts, {"type": "text", "text": EN_SUFFIX}]
    assert len(parts) == 2


def test_chat_without_user_message_is_an_error() -> None:
    with pytest.raises(ConfigError, match="user message"):
        chain_of_thought().apply([{"role": "system", "content": "hi"}])


def test_custom_trigger_and_marker_instruction() -> None:
    cot = chain_of_thought(trigger="Think carefully.", answer={"marker": "Final answer:"})
    assert cot.apply("Q") == 'Q\nThink carefully.\nEnd with a line "Final answer: <answer>".'
    assert cot.extract("Think... Final answer: 7") == "7"


def test_style_none_leaves_prompts_alone_but_still_extracts() -> None:
    cot = chain_of_thought("none")
    assert cot.apply("What is 2 + 2?") == "What is 2 + 2?"
    assert cot.apply(CHAT) == CHAT
    assert (cot.trigger, cot.instruction, cot.samples, cot.temperature) == (None, None, 1, None)
    assert cot.extract("Answer: 4") == "4"


def test_few_shot_adds_only_the_answer_instruction() -> None:
    cot = chain_of_thought("few-shot")
    assert cot.apply("Q") == "Q\n" + ANSWER_INSTRUCTIONS["en"]
    assert chain_of_thought("few-shot", answer={"method": "last-number"}).apply("Q") == "Q"


def test_non_marker_extraction_adds_no_instruction() -> None:
    cot = chain_of_thought(answer=ExtractSpec(method="last-number"))
    assert cot.apply("Q") == "Q\nLet's think step by step."
    assert cot.extract("2 + 2 = 4, so 4 apples.") == "4"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"style": "tree-of-thought"}, "unknown style"),
    ({"style": "none", "trigger": "Think."}, "adds no trigger"),
    ({"style": "few-shot", "trigger": "Think."}, "adds no trigger"),
    ({"trigger": "  "}, "must not be empty"),
    ({"lang": "fr"}, "no trigger for language"),
    ({"lang": "fr", "trigger": "Réfléchissons étape par étape."}, "no answer instruction"),
    ({"style": "self-consistency", "samples": 0}, "samples"),
    ({"style": "self-consistency", "temperature": 3.0}, "temperature"),
    ({"answer": {"method": "regex"}}, "needs a 'pattern'"),
    ({"answer": {"method": "marker", "colour": "red"}}, "unknown key 'colour'"),
])
def test_bad_configuration_is_a_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        chain_of_thought(**kwargs)


# --- extraction -------------------------------------------------------------------------

def test_extract_fits_the_extractor_protocol() -> None:
    extractor: Extractor = chain_of_thought().extract
    assert extractor("Answer: 4") == "4"


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
    spec = ExtractSpec(marker="####")
    assert extract_answer("#### 1\nthen #### 2 \n", spec) == "2"
    assert extract_answer("Answer: 3", spec) is None
    assert extract_answer("RESULT = 9", ExtractSpec(marker="result =")) == "9"


def test_think_block_decoy_is_ignored() -> None:
    text = "<think>Maybe the Answer: 5? No, 3 + 3 = 6.</think>\nAnswer: 6"
    assert extract_answer(text) == "6"
    assert extract_answer(text, ExtractSpec(method="last-number")) == "6"
    assert strip_reasoning(text) == "Answer: 6"


def test_unclosed_think_has_no_answer() -> None:
    text = "<think>Answer: 5 seems likely, but let me check 7"
    assert strip_reasoning(text) == ""
    assert extract_answer(text) is None
    assert extract_answer(text, ExtractSpec(method="last-number")) is None


def test_stray_closing_think_drops_what_precedes_it() -> None:
    assert strip_reasoning("</think>\n\nAnswer: 4") == "Answer: 4"
    # Chat templates that open <think> in the prompt leave only the closing tag.
    assert extract_answer("Answer: 1 maybe...</think>Answer: 2") == "2"
    assert strip_reasoning("<THINKING>x</THINKING> a <think>y</think> b") == "a  b"


def test_full_extraction_returns_the_visible_text() -> None:
    spec = ExtractSpec(method="full")
    assert extract_answer("<think>hmm</think>\n  Paris  \n", spec) == "Paris"
    assert extract_answer("<think>hmm</think>", spec) is None
    assert extract_answer(None, spec) is None


def test_regex_with_a_group_uses_group_one_and_last_match() -> None:
    spec = ExtractSpec(method="regex", pattern=r"choice \(([A-D])\)")
    assert extract_answer("choice (A) is wrong; choice (C) is right. Bye", spec) == "C"
    assert extract_answer("no choice", spec) is None


def test_regex_without_groups_uses_the_whole_match() -> None:
    spec = ExtractSpec(method="regex", pattern=r"\b[A-D]\b")
    assert extract_answer("Between A and D, I pick D.\nThanks", spec) == "D"
    assert extract_answer("<think>B</think>The option is C", spec) == "C"


def test_regex_inline_flags() -> None:
    spec = ExtractSpec(method="regex", pattern=r"(?im)^result:\s*(.+)$")
    assert extract_answer("RESULT: one\nresult: two\nbye", spec) == "two"


def test_json_field_inside_a_fence_with_prose() -> None:
    text = ('Sure! Here is my reasoning {not json}.\n```json\n'
            '{"reasoning": "3 + 3 = 6", "answer": 6}\n```\nHope that helps {"answer"')
    assert extract_answer(text, ExtractSpec(method="json", field="answer")) == "6"


def test_json_dotted_path_and_list_index() -> None:
    text = 'Result: {"result": {"answer": "Paris", "scores": [0.5, 0.25]}, "ok": true} done'
    assert extract_answer(text, ExtractSpec(method="json", field="result.answer")) == "Paris"
    assert extract_answer(text, ExtractSpec(method="json", field="result.scores.1")) == "0.25"
    assert extract_answer(text, ExtractSpec(method="json", field="ok")) == "true"
    assert extract_answer(text, ExtractSpec(method="json", field="result.missing")) is None
    assert extract_answer(text, ExtractSpec(method="json", field="result.scores.9")) is None


def test_json_last_object_with_the_field_wins_and_nested_objects_do_not_count() -> None:
    text = ('{"answer": "first"} then {"data": {"answer": "nested"}} '
            'then {"answer": "last"} then {"other": 1} {"answer": null}')
    assert extract_answer(text, ExtractSpec(method="json", field="answer")) == "last"
    assert extract_answer("no json at all", ExtractSpec(method="json", field="a")) is None


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
    assert extract_answer(text, ExtractSpec(method="last-number")) == expected


# --- spec validation --------------------------------------------------------------------

def test_invalid_regex_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid regex") as info:
        ExtractSpec(method="regex", pattern="([A-D]")
    assert info.value.key_path == "extract.pattern"


def test_json_without_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs a 'field'") as info:
        ExtractSpec(method="json")
    assert info.value.key_path == "extract.field"
    with pytest.raises(ConfigError, match="needs a 'field'"):
        chain_of_thought(answer={"method": "json"})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "vibes"}, "unknown method"),
    ({"method": "marker", "pattern": "x"}, "only used with method: regex"),
    ({"method": "regex", "pattern": "x", "field": "a"}, "only used with method: json"),
    ({"method": "last-number", "marker": "A:"}, "only used with method: marker"),
    ({"marker": ""}, "must not be empty"),
    ({"method": "json", "field": "a..b"}, "invalid dotted path"),
])
def test_other_invalid_specs(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExtractSpec(**kwargs)


def test_from_config_accepts_pydantic_models() -> None:
    from pydantic import BaseModel

    class Extract(BaseModel):
        method: str = "regex"
        marker: str | None = None
        pattern: str | None = r"(\d+)"
        field: str | None = None

    spec = ExtractSpec.from_config(Extract())
    assert spec == ExtractSpec(method="regex", pattern=r"(\d+)")
    with pytest.raises(ConfigError, match="expected a mapping"):
        ExtractSpec.from_config(42)


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


def test_chain_of_thought_vote_extracts_then_votes() -> None:
    cot = chain_of_thought("self-consistency", samples=4,
                           answer=ExtractSpec(method="last-number"))
    outputs = ["<think>maybe 5</think>It is 6.", "So 1,000 - 994 = 6", "I get 7", None]
    vote = cot.vote(outputs)
    assert (vote.answer, vote.count, vote.agreement) == ("6", 2, 2 / 3)


def test_a_catastrophic_extraction_regex_finds_nothing_instead_of_stalling(monkeypatch):
    import promptkit.builders.cot as cot

    monkeypatch.setattr(cot, "REGEX_TIMEOUT_S", 0.05)
    spec = cot.ExtractSpec(method="regex", pattern="(a|aa)+$")
    assert cot.extract_answer("a" * 40 + "b", spec) is None  # Fibonacci(40) tries
    fine = cot.ExtractSpec(method="regex", pattern=r"Answer: (\w+)")
    assert cot.extract_answer("Answer: aaaa", fine) == "aaaa"


def test_json_extraction_survives_deep_nesting_and_huge_outputs():
    from promptkit.builders.cot import ExtractSpec, extract_answer

    spec = ExtractSpec(method="json", field="answer")
    assert extract_answer("{" * 100_000 + ' {"answer": 7}', spec) == "7"
    assert extract_answer("[" * 50_000 + "]" * 50_000, spec) is None
