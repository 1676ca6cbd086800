"""Reading model text: reasoning stripped, patterns cached, JSON bounded, schemas checked
with bounded patterns; one implementation shared with chain-of-thought answer extraction
(promptkit.builders.answers)."""

from __future__ import annotations

import jsonschema
import pytest
import referencing.exceptions
import regex

from promptkit.builders import answers
from promptkit.scoring.reading import (
    compile_pattern,
    parse_json,
    search,
    strip_reasoning,
    validate_json,
)
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


@pytest.mark.parametrize(
    ("text", "constant"),
    [("NaN", "NaN"), ('{"n": Infinity}', "Infinity"), ("[1, -Infinity]", "-Infinity")],
)
def test_parse_json_refuses_nan_and_infinity(text, constant):
    # Python's json reads them; JSON has no such numbers (and NaN passes any maximum)
    with pytest.raises(ValueError, match=f"it holds {constant}, which JSON does not allow"):
        parse_json(text)
    assert parse_json("[1e999]") == [float("inf")]  # a JSON number, however big


CATASTROPHIC = "(a|aa)+$"  # on "aaaa...b" it tries every split of the a's: Fibonacci(40) ways
SLOW_TEXT = "a" * 40 + "b"


@pytest.mark.parametrize(
    ("instance", "schema"),
    [
        (SLOW_TEXT, {"type": "string", "pattern": CATASTROPHIC}),
        ({"list": [SLOW_TEXT]}, {"properties": {"list": {"items": {"pattern": CATASTROPHIC}}}}),
        ({SLOW_TEXT: 1}, {"propertyNames": {"pattern": CATASTROPHIC}}),
        ({SLOW_TEXT: 1}, {"patternProperties": {CATASTROPHIC: {"type": "string"}}}),
        ({SLOW_TEXT: 1}, {"$schema": "http://json-schema.org/draft-07/schema#",
                          "patternProperties": {CATASTROPHIC: {}},
                          "additionalProperties": False}),
    ],
)
def test_validate_json_stops_a_catastrophic_schema_pattern(monkeypatch, instance, schema):
    import promptkit.scoring.reading as reading

    monkeypatch.setattr(reading, "REGEX_TIMEOUT_S", 0.05)
    with pytest.raises(EvaluationError, match=r"pattern '\(a\|aa\)\+\$' took too long on "
                                              r"'aaaa.*' \(a schema's patterns get 0.05s per "
                                              r"check\)"):
        validate_json(instance, schema)


def test_validate_json_matches_patterns_as_jsonschema_does():
    with pytest.raises(jsonschema.ValidationError, match="'x1' does not match"):
        validate_json({"code": "x1"}, {"properties": {"code": {"pattern": "^[a-z]+$"}}})
    with_patterns = {"properties": {"id": {}}, "patternProperties": {"^x-": {"type": "string"}},
                     "additionalProperties": False}
    validate_json({"id": 1, "x-tag": "a"}, with_patterns)
    with pytest.raises(jsonschema.ValidationError, match="'x-tag'"):
        validate_json({"x-tag": 1}, with_patterns)
    with pytest.raises(jsonschema.ValidationError, match="'other' was unexpected"):
        validate_json({"id": 1, "other": 2}, with_patterns)


def test_validate_json_fetches_no_schema():
    # jsonschema alone would fetch the URL (with a deprecation warning); nothing listens on
    # port 9, so a fetch would fail with a URLError rather than Unresolvable
    with pytest.raises(referencing.exceptions.Unresolvable):
        validate_json({}, {"$ref": "http://127.0.0.1:9/schema.json"})
    validate_json({}, {"$ref": "https://json-schema.org/draft/2020-12/schema"})  # known
