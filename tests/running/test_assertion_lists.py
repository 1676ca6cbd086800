"""Which assertions score a case: the spec's, a prompt's own (added or replacing), a case's
own; reserved case keys; ``weight: 0``; the errors for each, before any request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import promptkit
from helpers import promptkit as run_cli
from promptkit.datasets import content_id, iter_cases
from promptkit.errors import ConfigError
from promptkit.running.plan import plan_eval
from promptkit.running.spec import json_schema, load_spec
from promptkit.testing import FakeEndpoint

TEMPLATE = "Classify: {{ text }}\n"

SPEC = """\
templates: templates
prompts:
  - id: plain
    template: classify@1
  - id: strict
    template: classify@1
    assert:
      - type: max-words
        value: 1
  - id: own-only
    template: classify@1
    assert_mode: replace
    assert:
      - type: icontains
        value: "{{ label }}"
providers:
  - id: fake
    base_url: BASE_URL
    model: m
    retries: 0
dataset: DATASET
assert:
  - type: contains
    value: "{{ label }}"
"""


def project(tmp_path: Path, endpoint: FakeEndpoint, dataset: str, rows: str,
            spec: str = SPEC) -> Path:
    (tmp_path / "templates" / "classify").mkdir(parents=True, exist_ok=True)
    (tmp_path / "templates" / "classify" / "v1.jinja").write_text(TEMPLATE)
    (tmp_path / dataset).write_text(rows)
    path = tmp_path / "eval.yaml"
    path.write_text(spec.replace("BASE_URL", endpoint.base_url).replace("DATASET", dataset))
    return path


def by_row(report) -> dict[tuple[str, str], promptkit.CaseResult]:
    return {(r.prompt_id, r.case_id): r for r in report.results()}


def test_prompt_and_case_assertions_add_to_or_replace_the_specs(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    rows = [
        {"id": "a", "text": "good", "label": "positive"},
        # this case also needs the word 'very' (its own list comes after the prompt's)
        {"id": "b", "text": "great", "label": "positive",
         "assert": [{"type": "contains", "value": "very"}]},
    ]
    spec = project(tmp_path, endpoint, "data.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    endpoint.respond_with(lambda request: "Positive")  # one word, capitalised
    with promptkit.evaluate(spec) as report:
        results = by_row(report)
    # The spec's 'contains positive' fails on 'Positive' (case-sensitive) for plain and strict;
    # own-only replaces it with icontains, which passes.
    types = {key: [a["type"] for a in r.assertions] for key, r in results.items()}
    assert types[("plain", "a")] == ["contains"]
    assert types[("strict", "a")] == ["contains", "max-words"]
    assert types[("own-only", "a")] == ["icontains"]
    assert types[("own-only", "b")] == ["icontains", "contains"]  # the case's own, last
    assert types[("strict", "b")] == ["contains", "max-words", "contains"]
    assert results[("own-only", "a")].passed
    assert not results[("own-only", "b")].passed  # its own 'very' is missing
    assert not results[("plain", "a")].passed
    assert results[("strict", "a")].assertions[1]["passed"]  # one word


def test_a_case_assertion_renders_with_its_variables_and_reports_its_reason(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    rows = [{"text": "x", "label": "pos", "want": "yes",
             "assert": [{"type": "equals", "value": "{{ want }}", "metric": "exact"}]}]
    spec = project(tmp_path, endpoint, "data.jsonl", json.dumps(rows[0]) + "\n")
    endpoint.respond_with(lambda request: "no")
    with promptkit.evaluate(spec, prompts=["plain"]) as report:
        (result,) = report.results()
    assert result.metrics["exact"] == 0.0
    assert "want" in result.vars and "assert" not in result.vars


def test_reserved_keys_are_not_variables_and_not_in_the_case_id(tmp_path: Path) -> None:
    plain = {"text": "t", "label": "l"}
    configured = {**plain, "assert": [{"type": "contains", "value": "l"}], "category": "news",
                  "turns": [{"role": "user", "content": "and?"}], "tool_results": {},
                  "tool_handler": "app:handle"}
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(plain) + "\n" + json.dumps({**configured, "text": "u"}) + "\n")
    first, second = iter_cases(path)
    assert first.vars == plain and second.vars == {"text": "u", "label": "l"}
    assert set(second.reserved) == {"assert", "category", "turns", "tool_results",
                                    "tool_handler"}
    # adding or changing an assertion or a category keeps the case's id (and its baseline)
    assert content_id(configured) == content_id(plain) == first.id


def test_csv_holds_reserved_keys_as_json_cells(tmp_path: Path,
                                                endpoint: FakeEndpoint) -> None:
    assertion = json.dumps([{"type": "icontains", "value": "{{ label }}"}]).replace('"', '""')
    rows = ("id,text,label,assert,category\n"
            f'c1,good,positive,"{assertion}",news\n'
            "c2,bad,negative,,sport\n")
    spec = project(tmp_path, endpoint, "data.csv", rows)
    cases = list(iter_cases(tmp_path / "data.csv"))
    assert cases[0].asserts == [{"type": "icontains", "value": "{{ label }}"}]
    assert cases[1].asserts == [] and cases[1].reserved["category"] == "sport"
    assert cases[0].vars == {"text": "good", "label": "positive"}
    endpoint.respond_with(lambda request: "POSITIVE")
    with promptkit.evaluate(spec, prompts=["plain"]) as report:
        results = {r.case_id: r for r in report.results()}
    assert [a["type"] for a in results["c1"].assertions] == ["contains", "icontains"]
    assert [a["type"] for a in results["c2"].assertions] == ["contains"]


@pytest.mark.parametrize(("cell", "message"), [
    ('"[{""type"": ""contain"", ""value"": ""x""}]"',
     "data.csv:3: assert[0].type: unknown assertion type 'contain'"),
    ('"{not json"', "data.csv:3: assert: the 'assert' cell must hold JSON"),
    ('"{""type"": ""contains""}"', "data.csv:3: assert: a case's assert must be a list"),
    ('"[{""type"": ""contains"", ""value"": ""{{ lable }}""}]"',
     "data.csv:3: assert[0].value: '{{ lable }}': <template>:1: 'lable' is undefined"),
    ('"[{""type"": ""llm-judge"", ""value"": ""fair?"", ""provider"": ""nobody""}]"',
     "data.csv:3: assert[0].provider: unknown provider 'nobody'"),
])
def test_a_bad_case_assertion_is_invalid_input_before_any_request(
        tmp_path: Path, endpoint: FakeEndpoint, cell: str, message: str) -> None:
    rows = f"id,text,label,assert\nc1,good,positive,\nc2,bad,negative,{cell}\n"
    spec = project(tmp_path, endpoint, "data.csv", rows)
    with pytest.raises(ConfigError) as info:
        plan_eval(load_spec(spec))
    assert message in str(info.value)
    proc = run_cli("eval", str(spec), cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert endpoint.requests == []  # nothing was asked


def test_a_bad_prompt_assertion_names_its_key(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = project(tmp_path, endpoint, "data.jsonl", '{"text": "t", "label": "l"}\n',
                   SPEC.replace("value: 1\n", "value: 1\n        weight: -1\n"))
    proc = run_cli("eval", str(spec), cwd=tmp_path)
    assert proc.returncode == 2
    assert "eval.yaml:10: prompts[1].assert[0].weight" in proc.stderr
    typo = project(tmp_path, endpoint, "data.jsonl", '{"text": "t", "label": "l"}\n',
                   SPEC.replace('value: "{{ label }}"\nproviders', 'value: "{{ lable }}"\n'
                                'providers'))
    proc = run_cli("eval", str(typo), cwd=tmp_path)
    assert proc.returncode == 2
    assert "prompts[2].assert[0].value: '{{ lable }}'" in proc.stderr
    assert "'lable' is undefined (case " in proc.stderr


def test_inline_cases_take_assert_and_category(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = project(tmp_path, endpoint, "unused.jsonl", "", SPEC.replace(
        "dataset: DATASET\n",
        "cases:\n"
        "  - {text: a, label: x, category: one, assert: [{type: equals, value: x}]}\n"
        "  - {text: b, label: y}\n"))
    endpoint.respond_with(lambda request: "x")
    with promptkit.evaluate(spec, prompts=["plain"]) as report:
        first, second = sorted(report.results(), key=lambda r: r.case_index)
    assert [a["type"] for a in first.assertions] == ["contains", "equals"] and first.passed
    assert [a["type"] for a in second.assertions] == ["contains"] and not second.passed
    assert "category" not in first.vars
    bad = project(tmp_path, endpoint, "unused.jsonl", "", SPEC.replace(
        "dataset: DATASET\n", "cases:\n  - {text: a, label: x, assert: [{type: nope}]}\n"))
    proc = run_cli("eval", str(bad), cwd=tmp_path)
    assert proc.returncode == 2 and "cases[0].assert[0].type: unknown assertion type 'nope'" \
        in proc.stderr


def test_weight_zero_is_reported_but_never_fails_the_case(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = project(tmp_path, endpoint, "data.jsonl", '{"text": "t", "label": "ok"}\n',
                   SPEC + "  - type: max-words\n    value: 1\n    weight: 0\n"
                                "    metric: brevity\n")
    endpoint.respond_with(lambda request: "ok, it is fine")
    with promptkit.evaluate(spec, prompts=["plain"]) as report:
        (result,) = report.results()
        (row,) = report.rows
    assert result.passed and result.score == 1.0
    assert result.assertions[1]["passed"] is False and result.assertions[1]["weight"] == 0
    assert result.metrics["brevity"] == 0.0 and row.metrics["brevity"] == 0.0
    assert row.pass_rate == 1.0


def test_the_schema_covers_the_new_keys() -> None:
    schema = json_schema()
    defs = schema["$defs"]
    variant = defs["PromptVariant"]["anyOf"][1]["properties"]  # [0]: the string shorthand
    assert "assert" in variant and variant["assert_mode"]["enum"] == ["add", "replace"]
    inline = defs["InlineCase"]
    assert {"id", "assert", "category"} <= set(inline["properties"])
    assert inline.get("additionalProperties", True) is not False  # template variables
    assert "weight" in defs["Assertion"]["properties"]


def test_a_template_reading_a_reserved_key_is_named(tmp_path: Path,
                                                    endpoint: FakeEndpoint) -> None:
    spec = project(tmp_path, endpoint, "data.jsonl",
                   '{"text": "t", "label": "l", "category": "food"}\n')
    (tmp_path / "templates" / "classify" / "v1.jinja").write_text(
        "---\ninputs: {text: string, category: string}\n---\n{{ category }}: {{ text }}\n")
    proc = run_cli("eval", str(spec), cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert ("eval.yaml:3: prompts[0]: classify@1 reads 'category', a reserved case key"
            in proc.stderr) and "rename the input" in proc.stderr
    assert endpoint.count == 0


def test_replace_without_an_assert_list_is_refused(tmp_path: Path,
                                                   endpoint: FakeEndpoint) -> None:
    own = '    assert:\n      - type: icontains\n        value: "{{ label }}"\nproviders'
    assert own in SPEC
    spec = project(tmp_path, endpoint, "data.jsonl", '{"text": "t", "label": "l"}\n',
                   SPEC.replace(own, "providers"))
    with pytest.raises(ConfigError) as info:
        load_spec(spec)
    assert "assert_mode: replace needs this prompt's own assert list" in str(info.value)
