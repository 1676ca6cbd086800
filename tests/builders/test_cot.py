"""Tests for promptkit.builders.cot: settings, triggers, and what apply() adds to a prompt."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest

from promptkit.builders.answers import ExtractSettings, majority_vote
from promptkit.builders.cot import (
    ANSWER_INSTRUCTIONS,
    TRIGGERS,
    ChainOfThought,
    CotSettings,
    chain_of_thought,
)
from promptkit.errors import ConfigError
from promptkit.running.spec import load_spec

REPO = Path(__file__).parents[2]

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
    cot = chain_of_thought(trigger="Think carefully.", extract={"marker": "Final answer:"})
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
    assert chain_of_thought("few-shot", extract={"method": "last-number"}).apply("Q") == "Q"


def test_non_marker_extraction_adds_no_instruction() -> None:
    cot = chain_of_thought(extract=ExtractSettings(method="last-number"))
    assert cot.apply("Q") == "Q\nLet's think step by step."
    assert cot.extract("2 + 2 = 4, so 4 apples.") == "4"


@pytest.mark.parametrize(("kwargs", "key", "message"), [
    ({"style": "tree-of-thought"}, "style", "Input should be 'none', 'zero-shot'"),
    ({"style": "none", "trigger": "Think."}, "trigger", "adds no trigger"),
    ({"style": "few-shot", "trigger": "Think."}, "trigger", "adds no trigger"),
    ({"trigger": "  "}, "trigger", "must not be empty"),
    ({"lang": "fr"}, "lang", "no trigger for language"),
    ({"lang": "fr", "trigger": "Réfléchissons étape par étape."}, "lang",
     "no answer instruction"),
    ({"style": "self-consistency", "samples": 0}, "samples", "greater than or equal to 1"),
    ({"samples": True}, "samples", "valid integer"),
    ({"style": "self-consistency", "temperature": 3.0}, "temperature", "less than or equal"),
    ({"extract": {"method": "regex"}}, "extract.pattern", "needs a 'pattern'"),
    ({"extract": {"method": "marker", "colour": "red"}}, "extract.colour",
     "unknown key 'colour'"),
])
def test_bad_configuration_is_a_config_error_naming_the_key(kwargs: dict, key: str,
                                                           message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        chain_of_thought(**kwargs)
    assert info.value.key_path == key


@pytest.mark.parametrize(("kwargs", "key", "message"), [
    ({"style": "bogus"}, "cot.style", "Input should be 'none', 'zero-shot'"),
    ({"style": "none", "trigger": "Think."}, "cot.trigger", "style 'none' adds no trigger"),
    ({"samples": 0}, "cot.samples", "greater than or equal to 1"),
    ({"extract": {"method": "vibes"}}, "cot.extract.method", "Input should be 'marker'"),
    ({"extract": {"method": "json"}}, "cot.extract.field", "method: json needs a 'field'"),
    ({"answer": {"method": "full"}}, "cot.answer", "unknown key 'answer'"),
])
def test_other_invalid_specs(kwargs: dict, key: str, message: str) -> None:
    # The settings model built directly raises promptkit's error, not pydantic's.
    with pytest.raises(ConfigError, match=message) as info:
        CotSettings(**kwargs)
    assert info.value.key_path == key
    assert str(info.value).startswith(f"{key}: ")


# --- settings ---------------------------------------------------------------------------

def test_the_built_setup_keeps_its_settings() -> None:
    cot = chain_of_thought("self-consistency", lang="zh", samples=3,
                           extract={"method": "last-number"})
    assert type(cot.settings) is CotSettings
    assert cot.settings.extract == ExtractSettings(method="last-number")
    assert (cot.style, cot.samples, cot.temperature) == ("self-consistency", 3, 0.7)


def test_chain_of_thought_takes_a_whole_settings_model() -> None:
    settings = CotSettings(style="few-shot", lang="zh", extract={"marker": "结果："})
    assert chain_of_thought(settings) == chain_of_thought("few-shot", lang="zh",
                                                         extract={"marker": "结果："})
    assert chain_of_thought(settings).suffix == "最后一行写“结果：<答案>”。"
    with pytest.raises(TypeError, match=r"no other options \(lang\)"):
        chain_of_thought(settings, lang="en-plan")


def test_answer_is_the_deprecated_name_of_extract() -> None:
    with pytest.warns(DeprecationWarning, match="'answer' is deprecated.*use 'extract'") as w:
        cot = chain_of_thought(answer={"method": "last-number"})
    assert w[0].filename == __file__
    assert cot == chain_of_thought(extract={"method": "last-number"})
    with pytest.raises(TypeError, match="got 'extract' and its old name 'answer'"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        chain_of_thought(answer={"method": "full"}, extract={"method": "full"})
    with pytest.raises(TypeError, match="unexpected keyword argument 'answers'"):
        chain_of_thought(answers={"method": "full"})


SPEC = """\
templates: {templates}
prompts:
  - id: reasoned
    template: math@1
    cot:
{cot}
providers:
  - {{id: fake, base_url: "http://127.0.0.1:9/v1", model: m}}
cases:
  - {{id: q1, question: "2 + 2?"}}
"""


def write_spec(tmp_path: Path, cot: str) -> Path:
    body = "\n".join(f"      {line}" for line in cot.strip().splitlines())
    path = tmp_path / "eval.yaml"
    path.write_text(SPEC.format(templates=REPO / "templates", cot=body), encoding="utf-8")
    return path


def test_a_spec_and_chain_of_thought_give_the_same_model(tmp_path: Path) -> None:
    path = write_spec(tmp_path, """\
style: self-consistency
samples: 3
lang: zh
extract: {method: regex, pattern: '答案：(\\d+)'}""")
    from_yaml = load_spec(path).spec.prompts[0].cot
    built = chain_of_thought("self-consistency", samples=3, lang="zh",
                             extract={"method": "regex", "pattern": r"答案：(\d+)"})
    assert type(from_yaml) is CotSettings and from_yaml == built.settings
    assert chain_of_thought(from_yaml) == built


# `cot:` is on line 5, its first key on line 6.
@pytest.mark.parametrize(("cot", "line", "key", "message"), [
    ("style: tree", 6, "style", "Input should be"),
    ("style: none\ntrigger: Think.", 7, "trigger", "style 'none' adds no trigger"),
    ("lang: fr", 6, "lang", "no trigger for language 'fr'"),
    ("samples: 0", 6, "samples", "greater than or equal to 1"),
    ("extract: {method: regex, pattern: '(unclosed'}", 6, "extract.pattern",
     "invalid regex '(unclosed'"),
    ("extract: {method: json}", 6, "extract.field", "method: json needs a 'field'"),
    ("extract: {method: last-number, marker: 'A:'}", 6, "extract.marker",
     "only used with method: marker"),
    ("answer: {method: full}", 6, "answer", "unknown key"),
])
def test_a_bad_setting_names_file_line_and_key(tmp_path: Path, cot: str, line: int, key: str,
                                               message: str) -> None:
    path = write_spec(tmp_path, cot)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}:{line}: prompts[0].cot.{key}: ")
    assert message in info.value.message


def test_self_consistency_extracts_then_votes() -> None:
    cot = chain_of_thought("self-consistency", samples=4,
                           extract=ExtractSettings(method="last-number"))
    outputs = ["<think>maybe 5</think>It is 6.", "So 1,000 - 994 = 6", "I get 7", None]
    vote = majority_vote([cot.extract(text) for text in outputs])
    assert (vote.answer, vote.count, vote.agreement) == ("6", 2, 2 / 3)
