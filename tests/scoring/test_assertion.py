"""The Assertion model: types checked against the registry, parameters against the type;
check_assertions: providers, functions and patterns before a run."""

from __future__ import annotations

import pydantic
import pytest

from promptkit.errors import ConfigError
from promptkit.scoring.assertion import Assertion, check_assertions
from promptkit.scoring.registry import ASSERTION_TYPES, DEFAULT_THRESHOLDS


def says_hello(output, context):
    return "hello" in output


NOT_CALLABLE = 42


def ref(name: str) -> str:
    return f"{__name__}:{name}"


def test_unknown_type_lists_the_valid_types():
    with pytest.raises(pydantic.ValidationError) as info:
        Assertion(type="rouge")
    message = str(info.value)
    assert "unknown assertion type 'rouge'" in message
    assert all(kind in message for kind in ASSERTION_TYPES)
    assert "not-" in message


def test_all_types_and_their_negations_are_accepted():
    examples = {
        "equals": {"value": "a"},
        "contains": {"value": "a"},
        "icontains": {"value": "a"},
        "starts-with": {"value": "a"},
        "regex": {"value": "a+"},
        "contains-any": {"value": ["a"]},
        "contains-all": {"value": ["a"]},
        "is-json": {},
        "json-schema": {"value": {"type": "object"}},
        "json-path": {"path": "$.a", "value": 1},
        "tool-call": {"name": "f", "arguments": {"x": 1}},
        "tool-call-f1": {"value": [{"name": "f"}]},
        "python": {"value": "m:f"},
        "rouge-n": {"expected": "a", "n": 2},
        "rouge-l": {"expected": "a"},
        "bleu": {"expected": "a"},
        "levenshtein": {"expected": "a"},
        "similar": {"expected": "a", "provider": "e"},
        "llm-judge": {"value": "rubric", "provider": "j"},
        "latency": {"value": 100},
        "cost": {"value": 0.5},
        "max-tokens": {"value": 10},
        "max-words": {"value": 10},
    }
    assert list(examples) == list(ASSERTION_TYPES)  # the order the README and messages give
    for kind, fields in examples.items():
        assert Assertion(type=kind, **fields).base_type == kind
        assert Assertion(type=f"not-{kind}", **fields).negated


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "contains", "value": "a", "colour": "red"}, "Extra inputs are not permitted"),
        ({"type": "contains"}, "value: contains needs a text value"),
        ({"type": "equals", "value": True}, "value: equals needs a text value"),
        ({"type": "contains-any", "value": "a"}, "needs a non-empty list of texts"),
        ({"type": "contains-all", "value": []}, "needs a non-empty list of texts"),
        ({"type": "rouge-l"}, "expected: rouge-l needs the reference text"),
        ({"type": "bleu", "expected": "a", "value": "b"}, "not both"),
        ({"type": "contains", "value": "a", "expected": "a"}, "expected: contains takes its text"),
        ({"type": "latency", "value": "fast"}, "needs a number >= 0"),
        ({"type": "max-words", "value": -1}, "needs a number >= 0"),
        ({"type": "is-json", "value": "object"}, "optional JSON schema"),
        ({"type": "python", "value": "module_only"}, "python needs 'module:function'"),
        ({"type": "llm-judge", "value": " ", "provider": "j"}, "needs a rubric"),
        ({"type": "llm-judge", "value": 42, "provider": "j"}, "needs a rubric"),
        ({"type": "contains", "value": "a", "threshold": 0.5}, "takes no threshold"),
        ({"type": "bleu", "expected": "a", "threshold": 2}, "less than or equal to 1"),
        ({"type": "rouge-l", "expected": "a", "n": 2}, "n: only rouge-n takes n, not rouge-l"),
        ({"type": "contains", "value": "a", "provider": "j"},
         "provider: only llm-judge and similar take a provider, not contains"),
        ({"type": "contains", "value": "a", "weight": -1}, "greater than or equal to 0"),
    ],
)
def test_invalid_assertions(fields, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        Assertion(**fields)


def test_default_thresholds_and_metric_names():
    assert DEFAULT_THRESHOLDS == {
        "rouge-n": 0.5,
        "rouge-l": 0.5,
        "bleu": 0.5,
        "levenshtein": 0.8,
        "similar": 0.75,
        "tool-call-f1": 1.0,
        "python": 0.5,
    }
    assert Assertion(type="not-bleu", expected="a").pass_mark == 0.5
    assert Assertion(type="bleu", expected="a", threshold=0.2).pass_mark == 0.2
    assert Assertion(type="llm-judge", value="r").pass_mark is None
    assert Assertion(type="not-bleu", expected="a").metric_name == "not-bleu"
    assert Assertion(type="bleu", expected="a", metric="fluency").metric_name == "fluency"


def test_template_strings_are_the_texts_rendered_per_case():
    assert Assertion(type="contains", value="{{ a }}").template_strings() == [
        ("value", "{{ a }}")]
    assert Assertion(type="contains-all", value=["x", "{{ b }}"]).template_strings() == [
        ("value", "x"), ("value", "{{ b }}")]
    assert Assertion(type="bleu", expected="{{ c }}").template_strings() == [
        ("expected", "{{ c }}")]
    assert Assertion(type="bleu", value="{{ c }}").template_strings() == [("value", "{{ c }}")]
    for unrendered in (Assertion(type="python", value="m:f"), Assertion(type="latency", value=1),
                       Assertion(type="is-json", value={"title": "{{ x }}"}),
                       Assertion(type="json-schema", value={"title": "{{ x }}"})):
        assert unrendered.template_strings() == []


def test_texts_a_handler_renders_itself_are_listed_but_left_as_written():
    call = Assertion(type="tool-call", name="{{ tool }}", order=["a", "{{ b }}"],
                     arguments={"city": "{{ city }}", "stops": [{"at": "{{ at }}"}], "n": 2})
    assert call.template_strings() == [
        ("name", "{{ tool }}"), ("arguments", "{{ city }}"), ("arguments", "{{ at }}"),
        ("order", "a"), ("order", "{{ b }}")]
    assert call.rendered(str.upper) == call  # tool-call renders them, with TemplatedText
    expected = Assertion(type="tool-call-f1", value=[{"name": "f", "arguments": {"q": "{{ q }}"}}])
    assert expected.template_strings() == [("value", "f"), ("value", "{{ q }}")]
    path = Assertion(type="json-path", path="$.a", value="{{ v }}", regex="{{ r }}", contains=3)
    assert path.template_strings() == [("value", "{{ v }}"), ("regex", "{{ r }}")]


def test_check_assertions_accepts_a_valid_list():
    check_assertions(
        [
            Assertion(type="contains", value="a"),
            Assertion(type="regex", value=r"^\d+$"),
            Assertion(type="regex", value="{{ pattern }}"),  # checked per case instead
            Assertion(type="python", value=ref("says_hello")),
            Assertion(type="python", value="os.path:join"),
            Assertion(type="llm-judge", value="rubric", provider="judge"),
            Assertion(type="not-similar", expected="a", provider="emb"),
            Assertion(type="is-json", value={"type": "object"}),
        ],
        providers={"judge", "emb", "local"},
    )


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        (
            Assertion(type="llm-judge", value="r"),
            "assert[2].provider: llm-judge needs an explicit judge provider "
            "(no default judge is used)",
        ),
        (
            Assertion(type="not-similar", expected="a"),
            "assert[2].provider: similar needs an explicit embedding provider "
            "(no default embedding is used)",
        ),
        (
            Assertion(type="llm-judge", value="r", provider="gpt-5"),
            "assert[2].provider: unknown provider 'gpt-5' (known: judge, local)",
        ),
        (
            Assertion(type="python", value="no_such_module_xyz:check"),
            "assert[2].value: cannot load python assertion 'no_such_module_xyz:check': "
            "ModuleNotFoundError",
        ),
        (
            Assertion(type="python", value=ref("no_such_function")),
            "assert[2].value: cannot load python assertion",
        ),
        (
            Assertion(type="python", value=ref("NOT_CALLABLE")),
            "TypeError: 'NOT_CALLABLE' is not callable",
        ),
        (Assertion(type="regex", value="(unclosed"), "assert[2].value: invalid regex '(unclosed'"),
    ],
)
def test_check_assertions_errors_name_the_index(assertion, message):
    assertions = [Assertion(type="contains", value="a"), Assertion(type="is-json"), assertion]
    with pytest.raises(ConfigError) as info:
        check_assertions(assertions, providers={"judge", "local"})
    assert message in str(info.value)
    assert str(info.value).startswith(f"{info.value.key_path}: ")
    assert info.value.key_path.startswith("assert[2].")
